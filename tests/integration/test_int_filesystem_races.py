"""The filesystem connector under a hostile folder (issue 10, class 3): a folder swapped for a
symbolic link while deletes run never leads one outside the root; a hard-linked file is not
called deleted; a name too long for the filesystem is a permanent error, not a retry."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from retentiond.connectors import (
    ConnectorRef,
    FilesystemConnector,
    LocatorRefused,
    PermanentConnectorError,
    TransientConnectorError,
)
from retentiond.lifecycle.execute import _failure

ROUNDS = 400


def ref(locator: str) -> ConnectorRef:
    return ConnectorRef("files", locator, "R1")


def _bait(outside: Path) -> None:
    """What a redirected delete would reach: a file and a folder of files outside the root."""
    (outside / "b" / "c").mkdir(parents=True, exist_ok=True)
    (outside / "b" / "file.txt").write_text("keep me")
    (outside / "b" / "c" / "inner.txt").write_text("keep me too")


def _swapper(root: Path, outside: Path, stop: threading.Event) -> threading.Thread:
    """A thread that swaps root/a for a symbolic link to ``outside`` and back, in a loop,
    putting the record's data back inside each time while root/a is its own folder (only this
    thread swaps, so its writes never go through the link: a write by the test that raced the
    swap would itself reach outside, and look like the connector's doing)."""
    def run() -> None:
        while not stop.is_set():
            try:
                (root / "a" / "b" / "c").mkdir(parents=True, exist_ok=True)
                (root / "a" / "b" / "file.txt").write_text("record")
                (root / "a" / "b" / "c" / "inner.txt").write_text("record")
            except OSError:
                pass
            try:
                os.rename(root / "a", root / "a-real")
                os.symlink(outside, root / "a")
                os.unlink(root / "a")
                os.rename(root / "a-real", root / "a")
            except OSError:
                pass
    return threading.Thread(target=run, daemon=True)


@pytest.mark.parametrize("locator", ["a/b/file.txt", "a/b", "a/b/c"])
def test_a_folder_swapped_for_a_link_mid_delete_never_leads_outside(tmp_path, locator):
    """A thread swaps a folder on the locator's path for a link out of the root while deletes
    of that locator run ROUNDS times: each delete deletes inside, is refused or finds nothing;
    nothing outside the root is ever touched."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    _bait(outside)
    fs = FilesystemConnector("files", root)
    stop = threading.Event()
    (root / "a").mkdir(parents=True)
    thread = _swapper(root, outside, stop)
    thread.start()
    outcomes: dict[str, int] = {}
    try:
        for _ in range(ROUNDS):
            try:
                what = fs.delete(ref(locator), "disposal-1")
                key = what.split(" of ")[0]
            except LocatorRefused:
                key = "refused"
            except PermanentConnectorError as exc:
                key = str(exc).rsplit(": ", 1)[-1]
            except TransientConnectorError:
                # The swapper writes the record's files back while a folder is being removed
                # (ENOTEMPTY): the executor would try again later, as it should.
                key = "transient"
            outcomes[key] = outcomes.get(key, 0) + 1
            assert (outside / "b" / "file.txt").read_text() == "keep me"
            assert (outside / "b" / "c" / "inner.txt").read_text() == "keep me too"
    finally:
        stop.set()
        thread.join()
    assert sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*")) == \
        ["b", "b/c", "b/c/inner.txt", "b/file.txt"]
    assert outcomes.get("deleted a file", 0) + outcomes.get("deleted a folder", 0) > 0, outcomes


def test_a_hard_linked_file_is_refused_permanently(tmp_path):
    """A file with a second hard link (alone, or inside a folder) is not deleted: its data
    would stay under the other name. The refusal is permanent and names no path."""
    root = tmp_path / "root"
    (root / "case").mkdir(parents=True)
    (root / "case" / "doc.txt").write_text("record")
    (root / "lone.txt").write_text("record")
    os.link(root / "lone.txt", tmp_path / "elsewhere.txt")
    os.link(root / "case" / "doc.txt", tmp_path / "elsewhere2.txt")
    fs = FilesystemConnector("files", root)
    for locator in ("lone.txt", "case"):
        with pytest.raises(PermanentConnectorError, match="more than one hard link") as info:
            fs.delete(ref(locator), "disposal-1")
        assert locator not in str(info.value)
    assert (root / "lone.txt").exists() and (root / "case" / "doc.txt").exists()
    os.unlink(tmp_path / "elsewhere.txt")
    assert fs.delete(ref("lone.txt"), "disposal-1") == "deleted a file"


@pytest.mark.parametrize("locator", ["x" * 300, "a/" + "y" * 256 + "/z", "/".join(["d"] * 2100)])
def test_names_too_long_are_permanent_errors(tmp_path, locator):
    """A name longer than the filesystem allows is refused up front (validate_locator too),
    and recorded as permanent by the executor, never as a retry."""
    root = tmp_path / "root"
    root.mkdir()
    fs = FilesystemConnector("files", root)
    for call in (lambda: fs.delete(ref(locator), "k"), lambda: fs.exists(ref(locator))):
        with pytest.raises(PermanentConnectorError) as info:
            call()
        assert _failure(info.value).permanent
    assert fs.validate_locator(locator) is not None


def test_os_level_enametoolong_and_eloop_are_permanent(tmp_path):
    """ENAMETOOLONG and ELOOP raised by the system itself map to permanent errors."""
    fs = FilesystemConnector("files", tmp_path)
    for code in (errno.ENAMETOOLONG, errno.ELOOP):
        err = fs._os_error("delete", OSError(code, os.strerror(code)))
        assert isinstance(err, PermanentConnectorError)


def test_a_link_in_the_middle_of_the_path_is_refused(tmp_path):
    """A locator passing through a symbolic link to a folder inside the root is refused: it
    names a path nobody meant."""
    root = tmp_path / "root"
    (root / "real" / "b").mkdir(parents=True)
    (root / "real" / "b" / "f.txt").write_text("record")
    os.symlink(root / "real", root / "alias")
    fs = FilesystemConnector("files", root)
    with pytest.raises(LocatorRefused, match="symbolic link"):
        fs.delete(ref("alias/b/f.txt"), "k")
    assert (root / "real" / "b" / "f.txt").exists()
    assert fs.delete(ref("real/b/f.txt"), "k") == "deleted a file"
