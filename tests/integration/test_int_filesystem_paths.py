"""The filesystem connector never acts outside its root."""

from __future__ import annotations

import os

import pytest

from retentiond.connectors import ConnectorRef, FilesystemConnector, LocatorRefused


@pytest.fixture
def layout(tmp_path):
    """A root with a case folder, and a secret file and folder outside it."""
    root = tmp_path / "root"
    (root / "cases" / "c1").mkdir(parents=True)
    (root / "cases" / "c1" / "a.txt").write_text("a")
    (root / "loose.txt").write_text("b")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me")
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.txt", root / "file-link-out")
    os.symlink(root / "loose.txt", root / "file-link-in")
    return root, outside


def ref(locator):
    return ConnectorRef("files", locator, "R1")


@pytest.mark.parametrize("locator", [
    "../outside/secret.txt",
    "cases/../../outside/secret.txt",
    "/etc/passwd",
    "/tmp",
    "link-out/secret.txt",
    "link-out",
    "file-link-out",
    "file-link-in",
    "",
    ".",
    "./",
    "cases\\..\\..\\outside",
    "bad\x00name",
])
def test_escaping_locators_are_refused(layout, locator):
    """'..', absolute paths, links out (or any link named directly), the root itself, NULs."""
    root, outside = layout
    fs = FilesystemConnector("files", root)
    for call in (lambda: fs.delete(ref(locator), "k"), lambda: fs.exists(ref(locator)),
                 lambda: fs.export(ref(locator))):
        with pytest.raises(LocatorRefused) as info:
            call()
        assert locator not in str(info.value) or locator in ("", ".")
    assert (outside / "secret.txt").read_text() == "keep me"
    assert (root / "loose.txt").exists()


def test_folder_under_root_is_deleted_and_absent_is_success(layout):
    """A folder goes with its contents; deleting it again is 'already absent'."""
    root, _ = layout
    fs = FilesystemConnector("files", root)
    assert fs.exists(ref("cases/c1"))
    assert fs.delete(ref("cases/c1"), "k") == "deleted a folder of 1 files"
    assert not fs.exists(ref("cases/c1"))
    assert fs.delete(ref("cases/c1"), "k") == "already absent"
    assert (root / "cases").is_dir()


def test_links_inside_a_deleted_folder_are_removed_not_followed(layout):
    """A link inside a record's folder is unlinked; what it points to survives."""
    root, outside = layout
    os.symlink(outside, root / "cases" / "c1" / "inner-link")
    FilesystemConnector("files", root).delete(ref("cases/c1"), "k")
    assert (outside / "secret.txt").exists() and not (root / "cases" / "c1").exists()


def test_link_swapped_in_after_configuration_is_caught(layout):
    """A folder replaced by a link out after start-up is refused at the next call."""
    root, outside = layout
    fs = FilesystemConnector("files", root)
    os.rename(root / "cases", root / "cases-moved")
    os.symlink(outside, root / "cases")
    with pytest.raises(LocatorRefused):
        fs.delete(ref("cases/secret.txt"), "k")
    assert (outside / "secret.txt").exists()
