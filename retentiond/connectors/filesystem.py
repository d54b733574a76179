"""``kind = "filesystem"``: a record is a file or a folder under a configured root.

The locator is a path relative to the root. Anything that could reach outside the root is
refused before any file is touched: an absolute path, a ``..`` part, a NUL, the root itself,
and a path that, once symbolic links are resolved, lands outside the root. A locator naming a
symbolic link is refused too (deleting the link would leave the data, deleting its target
would act on a path nobody named).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from retentiond.connectors.base import (
    ConnectorConfigError,
    ConnectorRef,
    Export,
    ExportedFile,
    LocatorRefused,
    PermanentConnectorError,
    TransientConnectorError,
    option,
)

#: OS errors that trying again cannot fix.
_PERMANENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP,
                     errno.ENOTDIR, errno.EISDIR, errno.EINVAL}


class FilesystemConnector:
    """Deletes a file or a folder (with everything in it) under ``root``."""

    kind = "filesystem"

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *,
                    base_dir: Path) -> FilesystemConnector:
        where = f"[connectors.{name}]"
        text = option(table, "root", str, where, required=True)
        root = Path(text) if Path(text).is_absolute() else base_dir / text
        if not root.is_dir():
            raise ConnectorConfigError(f"{where}.root: {root} is not a folder")
        return cls(name, root)

    def resolve(self, locator: str) -> Path:
        """The path a locator names, or :class:`LocatorRefused`. Checked on every call, so a
        symbolic link placed after configuration is caught too."""
        if not locator or "\x00" in locator or "\\" in locator:
            raise LocatorRefused(f"{self.name}: locator refused: empty, or a NUL or backslash in it")
        pure = PurePosixPath(locator)
        if pure.is_absolute():
            raise LocatorRefused(f"{self.name}: locator refused: an absolute path")
        if ".." in pure.parts:
            raise LocatorRefused(f"{self.name}: locator refused: it contains '..'")
        parts = [p for p in pure.parts if p != "."]
        if not parts:
            raise LocatorRefused(f"{self.name}: locator refused: it names the root itself")
        root = self.root.resolve(strict=True)
        candidate = root.joinpath(*parts)
        if candidate.is_symlink():
            raise LocatorRefused(f"{self.name}: locator refused: it names a symbolic link")
        resolved = candidate.resolve(strict=False)
        if resolved == root or root not in resolved.parents:
            raise LocatorRefused(f"{self.name}: locator refused: it escapes the root "
                                 "through a symbolic link")
        return resolved

    def _os_error(self, what: str, exc: OSError) -> Exception:
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        if exc.errno in _PERMANENT_ERRNOS:
            return PermanentConnectorError(f"{self.name}: {what} failed: {name}")
        return TransientConnectorError(f"{self.name}: {what} failed: {name}")

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        path = self.resolve(ref.locator)
        try:
            if path.is_dir():
                count = sum(len(files) for _, _, files in os.walk(path))
                # rmtree does not follow symbolic links inside the tree (it unlinks them).
                shutil.rmtree(path)
                return f"deleted a folder of {count} files"
            path.unlink()
            return "deleted a file"
        except FileNotFoundError:
            return "already absent"
        except OSError as exc:
            raise self._os_error("delete", exc) from exc

    def exists(self, ref: ConnectorRef) -> bool:
        path = self.resolve(ref.locator)
        return path.exists() or path.is_symlink()

    def export(self, ref: ConnectorRef) -> Export:
        path = self.resolve(ref.locator)
        try:
            if path.is_file():
                return Export(files=(ExportedFile(path.name, path.read_bytes()),))
            files = []
            for dirpath, _dirs, names in os.walk(path):
                for n in sorted(names):
                    p = Path(dirpath) / n
                    if p.is_symlink() or not p.is_file():
                        continue
                    files.append(ExportedFile(p.relative_to(path.parent).as_posix(),
                                              p.read_bytes()))
            return Export(files=tuple(files))
        except FileNotFoundError:
            return Export()
        except OSError as exc:
            raise self._os_error("export", exc) from exc

    def close(self) -> None:
        pass
