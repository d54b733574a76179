"""``kind = "filesystem"``: a record is a file or a folder under a configured root.

The locator is a path relative to the root. Anything that could reach outside the root is
refused before any file is touched: an absolute path, a ``..`` part, a NUL, the root itself, a
name longer than the filesystem allows. A locator naming a symbolic link, or passing through
one, is refused too (deleting the link would leave the data, deleting its target would act on
a path nobody named).

Every call walks from the root down by directory file descriptors: each folder on the way is
opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one before, and the last name is
examined, unlinked or removed relative to its parent's descriptor (``unlinkat``, and
``shutil.rmtree(dir_fd=...)``, which removes a tree by descriptors too). A folder swapped for a
symbolic link at any moment cannot lead a call outside the root: it makes that call fail
(``ELOOP``), it never redirects it.

A regular file with more than one hard link is refused: removing its name here would leave
its data reachable by the other name, so it would not be deleted.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from retentiond.connectors.base import (
    ConnectorConfigError,
    ConnectorRef,
    Export,
    ExportedFile,
    LocatorRefused,
    PermanentConnectorError,
    RemainingCopy,
    TransientConnectorError,
    option,
    remaining_option,
)

#: OS errors that trying again cannot fix.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP,
                     errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.EXDEV}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: Linux's limits for one name and for a whole path, in bytes.
NAME_MAX = 255
PATH_MAX = 4095


class _Absent(Exception):
    """The locator's path does not exist (a part of it is missing, or is not a folder)."""


class FilesystemConnector:
    """Deletes a file or a folder (with everything in it) under ``root``."""

    kind = "filesystem"

    def __init__(self, name: str, root: Path, *, backups_kept_days: int | None = None,
                 snapshots_kept_days: int | None = None) -> None:
        self.name = name
        self.root = root
        self.backups_kept_days = backups_kept_days
        self.snapshots_kept_days = snapshots_kept_days

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *,
                    base_dir: Path) -> FilesystemConnector:
        where = f"[connectors.{name}]"
        text = option(table, "root", str, where, required=True)
        root = Path(text) if Path(text).is_absolute() else base_dir / text
        if not root.is_dir():
            raise ConnectorConfigError(f"{where}.root: {root} is not a folder")
        return cls(name, root,
                   backups_kept_days=remaining_option(table, "backups_kept_days", where),
                   snapshots_kept_days=remaining_option(table, "snapshots_kept_days", where))

    # --- the locator --------------------------------------------------------------------------

    def _parts(self, locator: str) -> list[str]:
        """The locator's names, from the root down, or :class:`LocatorRefused`."""
        problem = self._problem(locator)
        if problem is not None:
            raise LocatorRefused(f"{self.name}: locator refused: {problem}")
        return [p for p in PurePosixPath(locator).parts if p != "."]

    @staticmethod
    def _problem(locator: str) -> str | None:
        if not locator or "\x00" in locator or "\\" in locator:
            return "empty, or a NUL or backslash in it"
        pure = PurePosixPath(locator)
        if pure.is_absolute():
            return "an absolute path"
        if ".." in pure.parts:
            return "it contains '..'"
        parts = [p for p in pure.parts if p != "."]
        if not parts:
            return "it names the root itself"
        if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts) or \
                len(locator.encode("utf-8", "surrogateescape")) > PATH_MAX:
            return "a name in it is longer than the filesystem allows"
        return None

    def validate_locator(self, locator: str) -> str | None:
        """Why this connector cannot name ``locator`` (no file is looked at), or None."""
        problem = self._problem(locator)
        return None if problem is None else f"{self.name}: {problem}"

    def resolve(self, locator: str) -> Path:
        """The path a locator names (for messages to people and for tests; every action goes
        by descriptors, never through this path)."""
        return self.root.resolve(strict=True).joinpath(*self._parts(locator))

    @contextmanager
    def _parent(self, parts: list[str]) -> Iterator[int]:
        """A descriptor of the folder holding the locator's last name, reached from the root
        one ``O_NOFOLLOW`` step at a time. Raises :class:`_Absent` when a part is missing."""
        fd = os.open(os.path.realpath(self.root), _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError as exc:
                    raise _Absent() from exc
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR and self._is_link(fd, part):
                        exc = OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                    if exc.errno == errno.ELOOP:
                        raise LocatorRefused(f"{self.name}: locator refused: it passes "
                                             "through a symbolic link") from exc
                    if exc.errno == errno.ENOTDIR:
                        raise _Absent() from exc
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def _is_link(fd: int, name: str) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    def _lstat(self, fd: int, name: str) -> os.stat_result | None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise LocatorRefused(f"{self.name}: locator refused: it names a symbolic link")
        return st

    def _os_error(self, what: str, exc: OSError) -> Exception:
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        if exc.errno in _PERMANENT_ERRNOS:
            return PermanentConnectorError(f"{self.name}: {what} failed: {name}")
        return TransientConnectorError(f"{self.name}: {what} failed: {name}")

    def _linked(self) -> PermanentConnectorError:
        return PermanentConnectorError(
            f"{self.name}: delete refused: a file has more than one hard link, so its data "
            "would remain under another name; remove the other links first")

    # --- the contract -------------------------------------------------------------------------

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        parts = self._parts(ref.locator)
        try:
            with self._parent(parts) as parent:
                st = self._lstat(parent, parts[-1])
                if st is None:
                    return "already absent"
                if stat.S_ISREG(st.st_mode):
                    if st.st_nlink > 1:
                        raise self._linked()
                    os.unlink(parts[-1], dir_fd=parent)
                    return "deleted a file"
                if not stat.S_ISDIR(st.st_mode):
                    raise PermanentConnectorError(f"{self.name}: delete refused: the locator "
                                                  "names neither a file nor a folder")
                count = 0
                for _dir, _dirs, files, dfd in os.fwalk(parts[-1], dir_fd=parent,
                                                        follow_symlinks=False):
                    for f in files:
                        fst = os.stat(f, dir_fd=dfd, follow_symlinks=False)
                        if stat.S_ISREG(fst.st_mode):
                            count += 1
                            if fst.st_nlink > 1:
                                raise self._linked()
                # By descriptors: links inside the tree are unlinked, never followed.
                shutil.rmtree(parts[-1], dir_fd=parent)
                return f"deleted a folder of {count} files"
        except _Absent:
            return "already absent"
        except FileNotFoundError:
            return "already absent"
        except OSError as exc:
            raise self._os_error("delete", exc) from exc

    def exists(self, ref: ConnectorRef) -> bool:
        parts = self._parts(ref.locator)
        try:
            with self._parent(parts) as parent:
                return self._lstat(parent, parts[-1]) is not None
        except _Absent:
            return False
        except OSError as exc:
            raise self._os_error("exists", exc) from exc

    def export(self, ref: ConnectorRef) -> Export:
        parts = self._parts(ref.locator)
        try:
            with self._parent(parts) as parent:
                st = self._lstat(parent, parts[-1])
                if st is None:
                    return Export()
                if stat.S_ISREG(st.st_mode):
                    return Export(files=(ExportedFile(parts[-1], _read(parts[-1], parent)),))
                files = []
                for top, _dirs, names, dfd in os.fwalk(parts[-1], dir_fd=parent,
                                                       follow_symlinks=False):
                    for n in sorted(names):
                        if stat.S_ISREG(os.stat(n, dir_fd=dfd, follow_symlinks=False).st_mode):
                            files.append(ExportedFile(f"{top}/{n}", _read(n, dfd)))
                return Export(files=tuple(sorted(files, key=lambda f: f.path)))
        except (_Absent, FileNotFoundError):
            return Export()
        except OSError as exc:
            raise self._os_error("export", exc) from exc

    def remaining_copies(self, executed_on: dt.date) -> tuple[RemainingCopy, ...]:
        """What of a deleted file outlives the delete, and until when."""
        where = f"[connectors.{self.name}]"
        copies = [*RemainingCopy.backups(self.backups_kept_days, executed_on,
                                        f"{where}.backups_kept_days")]
        if self.snapshots_kept_days is not None:
            copies.append(RemainingCopy(
                what="filesystem snapshots",
                expire_by=executed_on + dt.timedelta(days=self.snapshots_kept_days),
                basis=f"{where}.snapshots_kept_days = {self.snapshots_kept_days}"))
        copies.append(RemainingCopy(
            what="the deleted files' blocks on the disk, until the filesystem reuses them",
            expire_by=None, basis="unlinking a file frees its blocks without overwriting them"))
        return tuple(copies)

    def close(self) -> None:
        pass


def _read(name: str, dir_fd: int) -> bytes:
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()
