"""``kind = "return"``: send a record back to its originating controller, then delete our copy.

The record is exported through the connector of its own system (``export(ref)``), packed into
an encrypted package and delivered to the controller's drop folder; the executor records the
package's SHA-256 in the registry and only then deletes the source through the same connector.

Package formats (``format``):

- ``xlsx``: a password-protected workbook (ECMA-376 agile encryption, AES-256), what the seed
  ISA asks for exports ("password-protected XLSX files"); one sheet per table, plus a first
  sheet ``retentiond`` naming the record and the package;
- ``zip``: an AES-256 encrypted ZIP (WinZip AE-2), for records that are files. AES zip
  encrypts contents, not entry names, so entries are named ``files/0001.pdf`` and
  ``tables/0001.csv``; ``manifest.json`` (encrypted) maps them to the original names;
- ``auto`` (default): ``xlsx`` for table data, ``zip`` as soon as the record has files.

Each controller has its own password, read from a file when a package is made and never
logged: ``controllers.CODE.password_file``, else ``password_dir/CODE``, else the systemd
credential ``return-CODE`` in ``$CREDENTIALS_DIRECTORY``. Delivery is by folder:
``controllers.CODE.drop_dir``, else ``drop_dir/CODE``. (SFTP delivery is future work: see
``docs/connectors.md``.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from retentiond.connectors.base import (
    Connector,
    ConnectorConfigError,
    ConnectorRef,
    Export,
    PermanentConnectorError,
    TransientConnectorError,
    option,
)

FORMATS = ("auto", "xlsx", "zip")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
MIN_PASSWORD = 12
#: Packages are encrypted; the controller's pick-up (an SFTP account, a sync job) reads them
#: through the drop folder's group.
FILE_MODE = 0o640
DIR_MODE = 0o750


@dataclass(frozen=True)
class Package:
    """A delivered return package."""

    name: str
    path: Path
    sha256: str
    format: str
    size: int


@dataclass(frozen=True)
class ControllerDrop:
    """Per-controller overrides."""

    drop_dir: Path | None = None
    password_file: Path | None = None


class ReturnConnector:
    """Exports through the record's own connector, encrypts, delivers, then (through the
    executor) deletes the source. ``delete``, ``exists`` and ``export`` act on the source."""

    kind = "return"

    def __init__(self, name: str, drop_dir: Path, *, password_dir: Path | None = None,
                 controllers: Mapping[str, ControllerDrop] | None = None, fmt: str = "auto",
                 sources: Callable[[str], Connector] | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.name = name
        self.drop_dir = drop_dir
        self.password_dir = password_dir
        self.controllers = dict(controllers or {})
        self.format = fmt
        self._sources = sources
        self._environ = environ

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *, base_dir: Path) -> ReturnConnector:
        where = f"[connectors.{name}]"

        def path(text: str | None) -> Path | None:
            if text is None:
                return None
            return Path(text) if Path(text).is_absolute() else base_dir / text

        drop_dir = path(option(table, "drop_dir", str, where, required=True))
        assert drop_dir is not None
        fmt = option(table, "format", str, where, default="auto")
        if fmt not in FORMATS:
            raise ConnectorConfigError(f"{where}.format: must be one of {', '.join(FORMATS)}")
        controllers = {}
        for code, sub in option(table, "controllers", dict, where, default={}).items():
            cw = f"{where}.controllers.{code}"
            if not isinstance(sub, dict):
                raise ConnectorConfigError(f"{cw}: must be a table")
            controllers[code] = ControllerDrop(
                drop_dir=path(option(sub, "drop_dir", str, cw)),
                password_file=path(option(sub, "password_file", str, cw)),
            )
        return cls(name, drop_dir, password_dir=path(option(table, "password_dir", str, where)),
                   controllers=controllers, fmt=fmt)

    def bind(self, sources: Callable[[str], Connector]) -> None:
        """Tell the connector how to find the connector of a record's system."""
        self._sources = sources

    def source(self, ref: ConnectorRef) -> Connector:
        if self._sources is None:
            raise PermanentConnectorError(f"{self.name}: no source connectors bound")
        return self._sources(ref.system)

    # --- the contract, on the source ----------------------------------------------------------

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        return self.source(ref).delete(ref, idempotency_key)

    def exists(self, ref: ConnectorRef) -> bool:
        return self.source(ref).exists(ref)

    def export(self, ref: ConnectorRef) -> Export:
        return self.source(ref).export(ref)

    def close(self) -> None:
        pass

    # --- the return ---------------------------------------------------------------------------

    def _controller(self, ref: ConnectorRef) -> str:
        code = ref.controller
        if not code or not _CODE.match(code) or code.strip(".") == "":
            raise PermanentConnectorError(f"{self.name}: the record has no usable controller code")
        return code

    def password_for(self, code: str) -> str:
        """The controller's package password (read now; never logged)."""
        drop = self.controllers.get(code, ControllerDrop())
        if drop.password_file is not None:
            path = drop.password_file
        elif self.password_dir is not None:
            path = self.password_dir / code
        else:
            env = os.environ if self._environ is None else self._environ
            directory = env.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise PermanentConnectorError(
                    f"{self.name}: no password configured for controller {code} (set "
                    "password_dir, controllers.CODE.password_file, or a systemd credential "
                    f"return-{code})"
                )
            path = Path(directory) / f"return-{code}"
        try:
            password = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise PermanentConnectorError(
                f"{self.name}: no password file for controller {code}"
            ) from None
        except OSError as exc:
            raise TransientConnectorError(
                f"{self.name}: cannot read the password file for controller {code}: {exc.strerror}"
            ) from None
        if len(password) < MIN_PASSWORD:
            raise PermanentConnectorError(
                f"{self.name}: the password for controller {code} is shorter than "
                f"{MIN_PASSWORD} characters"
            )
        return password

    def drop_for(self, code: str) -> Path:
        drop = self.controllers.get(code, ControllerDrop())
        return drop.drop_dir if drop.drop_dir is not None else self.drop_dir / code

    def package_name(self, idempotency_key: str, fmt: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", idempotency_key)
        return f"retentiond-{safe}.{fmt}"

    def deliver(self, ref: ConnectorRef, idempotency_key: str) -> Package:
        """Export the record, encrypt it for its controller and write it atomically to the
        controller's drop folder (same name on a retry, so a retry replaces, never doubles)."""
        code = self._controller(ref)
        source = self.source(ref)
        if not source.exists(ref):
            raise PermanentConnectorError(
                f"{self.name}: nothing to return: the record is no longer in its system "
                "and no package was recorded for it"
            )
        export = source.export(ref)
        if export.is_empty:
            raise PermanentConnectorError(f"{self.name}: the record's export is empty")
        password = self.password_for(code)
        fmt = self.format
        if fmt == "auto":
            fmt = "zip" if export.files else "xlsx"
        if fmt == "xlsx" and export.files:
            raise PermanentConnectorError(f"{self.name}: the record has files: an xlsx "
                                          "package cannot hold them (use format zip or auto)")
        data = (encrypted_xlsx(export, ref, idempotency_key, password) if fmt == "xlsx"
                else encrypted_zip(export, ref, idempotency_key, password))
        name = self.package_name(idempotency_key, fmt)
        folder = self.drop_for(code)
        try:
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(DIR_MODE)
            target = folder / name
            _atomic_write(target, data)
            digest = hashlib.sha256(data).hexdigest()
            _atomic_write(folder / f"{name}.sha256", f"{digest}  {name}\n".encode())
        except OSError as exc:
            raise TransientConnectorError(
                f"{self.name}: delivery to the drop folder of {code} failed: {exc.strerror}"
            ) from None
        return Package(name=name, path=target, sha256=digest, format=fmt, size=len(data))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            # The service runs with UMask=0077; the drop's pick-up reads by group.
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _cell_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | Decimal | str):
        return value
    if isinstance(value, dt.datetime):
        # Excel has no time zones: aware times are written as UTC.
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dt.date | dt.time):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def encrypted_xlsx(export: Export, ref: ConnectorRef, key: str, password: str) -> bytes:
    """The export as a workbook encrypted with ``password`` (ECMA-376 agile encryption)."""
    from msoffcrypto.format.ooxml import OOXMLFile
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = Workbook(write_only=True)
    info = wb.create_sheet("retentiond")
    for row in (("record", ref.record_id), ("system", ref.system), ("package", key),
                ("controller", ref.controller or "")):
        info.append(list(row))
    used = {"retentiond"}
    for table in export.tables:
        title = _SHEET_BAD.sub("_", table.name)[:31] or "data"
        n = 1
        while title.lower() in used:
            n += 1
            title = f"{title[:28]}_{n}"
        used.add(title.lower())
        ws = wb.create_sheet(title)
        ws.append(list(table.columns))
        for row in table.rows:
            cells = []
            for value in row:
                v = _cell_value(value)
                if isinstance(v, str):
                    v = ILLEGAL_CHARACTERS_RE.sub("", v)
                cell = WriteOnlyCell(ws, value=v)
                if isinstance(v, str):
                    # Text, never a formula: data that starts with '=' stays data.
                    cell.data_type = "s"
                cells.append(cell)
            ws.append(cells)
    plain = io.BytesIO()
    wb.save(plain)
    plain.seek(0)
    out = io.BytesIO()
    OOXMLFile(plain).encrypt(password, out)
    return out.getvalue()


#: File extensions kept on a returned file's opaque entry name, so that it opens in the
#: program a school expects; any other extension (which might be part of a name) becomes .bin.
SAFE_EXTENSIONS = frozenset({
    "pdf", "doc", "docx", "odt", "rtf", "txt", "xls", "xlsx", "ods", "csv", "ppt", "pptx",
    "jpg", "jpeg", "png", "gif", "tif", "tiff", "bmp", "heic", "msg", "eml", "xml", "json",
    "html", "htm", "mp3", "mp4", "wav", "zip",
})


def opaque_entry(folder: str, n: int, original: str) -> str:
    """``files/0001.pdf``: a name that reveals nothing of the original (AES zip encrypts the
    contents, not the names anyone can list without the password)."""
    ext = PurePosixPath(original.replace("\\", "/")).suffix.lower().lstrip(".")
    return f"{folder}/{n:04d}.{ext if ext in SAFE_EXTENSIONS else 'bin'}"


def encrypted_zip(export: Export, ref: ConnectorRef, key: str, password: str) -> bytes:
    """The export as an AES-256 encrypted ZIP: its files, and each table as CSV, under opaque
    entry names (``tables/0001.csv``, ``files/0001.pdf``), with ``manifest.json``, encrypted
    like the rest, mapping each entry back to its table or original file name."""
    import csv
    import json

    import pyzipper

    manifest: dict[str, Any] = {"record": ref.record_id, "system": ref.system, "package": key,
                                "controller": ref.controller, "tables": [], "files": []}
    entries: list[tuple[str, bytes]] = []
    for n, table in enumerate(export.tables, start=1):
        text = io.StringIO()
        w = csv.writer(text)
        w.writerow(table.columns)
        w.writerows(tuple(_cell_value(v) for v in row) for row in table.rows)
        entry = f"tables/{n:04d}.csv"
        entries.append((entry, text.getvalue().encode("utf-8")))
        manifest["tables"].append({"entry": entry, "table": table.name, "rows": len(table.rows)})
    for n, f in enumerate(export.files, start=1):
        entry = opaque_entry("files", n, f.path)
        entries.append((entry, f.content))
        manifest["files"].append({"entry": entry, "name": _safe_member(f.path),
                                  "bytes": len(f.content),
                                  "sha256": hashlib.sha256(f.content).hexdigest()})
    out = io.BytesIO()
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password.encode("utf-8"))
        zf.setencryption(pyzipper.WZ_AES, nbits=256)
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for entry, data in entries:
            zf.writestr(entry, data)
    return out.getvalue()


def _safe_member(path: str) -> str:
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    return "/".join(parts) or "unnamed"
