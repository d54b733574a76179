"""Exports of lists: CSV, and pseudonymised, password-protected XLSX (the seed ISA requires
exports that leave the service to be both).

In the XLSX, record and subject references are replaced by keyed pseudonyms (HMAC-SHA256):
the same reference gives the same pseudonym within one service's key, so rows can be matched
back by someone who holds the key, and by no one else. The workbook is encrypted with the
password (ECMA-376 agile encryption, what Excel uses) by msoffcrypto-tool.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterable, Sequence
from typing import Any

MIN_EXPORT_PASSWORD = 10
#: Columns whose values identify a record or a subject; pseudonymised in XLSX exports.
IDENTIFYING = frozenset({"record_id", "record", "subject_ref", "scope", "entity_id", "locator"})


class ExportError(ValueError):
    """An export was refused (a weak password); the message says why."""


def pseudonym(key: bytes, value: object) -> str:
    return "p:" + hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:16]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return value


def _safe_text(value: Any) -> Any:
    # A cell that starts with = + - @ is run as a formula by spreadsheet programs.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A CSV document with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_safe_text(_cell(row.get(c))) for c in columns])
    return buf.getvalue()


def to_protected_xlsx(columns: Sequence[str], rows: Iterable[dict[str, Any]], *, password: str,
                      key: bytes, sheet: str = "Export") -> bytes:
    """A pseudonymised workbook, encrypted with ``password``."""
    import openpyxl
    from msoffcrypto.format.ooxml import OOXMLFile

    if len(password) < MIN_EXPORT_PASSWORD:
        raise ExportError(f"the export password needs at least {MIN_EXPORT_PASSWORD} characters")
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet[:31]
    ws.append(list(columns))
    for row in rows:
        values = []
        for c in columns:
            value = _cell(row.get(c))
            if c in IDENTIFYING and value != "":
                value = pseudonym(key, value)
            values.append(_safe_text(value))
        ws.append(values)
    plain = io.BytesIO()
    book.save(plain)
    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(plain.getvalue())).encrypt(password, encrypted)
    return encrypted.getvalue()


def decrypt_xlsx(data: bytes, password: str) -> list[list[Any]]:
    """The rows of an encrypted export (tests, and an operator's check)."""
    import msoffcrypto
    import openpyxl

    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    out = io.BytesIO()
    office.decrypt(out)
    ws = openpyxl.load_workbook(out).active
    assert ws is not None
    return [list(r) for r in ws.iter_rows(values_only=True)]


DISPOSAL_COLUMNS = ("id", "record_id", "category", "controller", "state", "due_on", "action",
                    "rule", "approvals_required", "approved_by", "reason", "policy_version",
                    "updated_at")
HOLD_COLUMNS = ("id", "scope", "covers", "type", "reason", "placed_by", "placed_at", "until", "active",
                "records_covered", "lifted_at", "lifted_by", "lift_reason")
AUDIT_COLUMNS = ("id", "occurred_at", "kind", "actor", "entity", "entity_id", "reason",
                 "policy_version", "data")
