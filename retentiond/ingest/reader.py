"""Read CSV or JSON lines as a stream of (line number, row) with light, strict parsing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: ``(line, row)`` pairs; a row that cannot be read is ``{"__error__": ..., "__field__": ...}``.
Rows = Iterator[tuple[int, dict[str, Any]]]


class RowError(ValueError):
    """One field of one row is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def refuse_invisible(field: str, value: str) -> str:
    """``value`` unchanged, or ``RowError`` naming the field and the first character that is a
    control, format or separator character other than the space: a NUL byte, a tab, a line or
    paragraph separator, a zero-width space, a bidirectional override, a non-breaking space.
    Such a character in a locator or an identifier is stored as given and then fails (or, worse,
    matches something else) only when the record is disposed of; in a name it makes two
    different values look the same."""
    if value.isprintable():  # C speed; true for almost every value of a large file
        return value
    for position, char in enumerate(value, start=1):
        if not (char == " " or char.isprintable()):
            name = unicodedata.name(char, "a control character")
            raise RowError(field, f"holds U+{ord(char):04X} ({name}) at character {position}: "
                           "control and invisible characters are not allowed")
    return value


def parse_date(field: str, value: Any) -> dt.date | None:
    """``YYYY-MM-DD`` or empty; anything else is an error naming the field."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
        raise RowError(field, f"{value!r} is not a date in the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise RowError(field, f"{value!r} is not a real date ({exc})") from exc


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


class Progress:
    """Progress on a terminal (stderr), silent otherwise."""

    def __init__(self, path: Path, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        try:
            self.total = os.path.getsize(path)
        except OSError:
            self.total = 0
        self.last = 0

    def update(self, rows: int, position: int) -> None:
        if not self.enabled or rows - self.last < 10_000:
            return
        self.last = rows
        pct = f" {100 * position / self.total:5.1f}%" if self.total else ""
        self.stream.write(f"\r  {rows:>12,} rows read{pct}")
        self.stream.flush()

    def done(self, rows: int) -> None:
        if self.enabled:
            self.stream.write(f"\r  {rows:>12,} rows read, done\n")
            self.stream.flush()


class _Counting(io.RawIOBase):
    """Wraps a binary file to count bytes read, for progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.position = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.position += n
        return n


def read_rows(path: Path, fmt: str, *, required: tuple[str, ...], optional: tuple[str, ...],
              progress: Progress | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)``. A missing or unknown column raises ``RowError`` for line 1 (CSV);
    a JSON line that is not an object raises for its line."""
    allowed = set(required) | set(optional)
    with path.open("rb") as raw:
        counter = _Counting(raw)
        text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
        if fmt == "csv":
            # csv.reader and one dict a row, as csv.DictReader does (blank lines skipped,
            # missing trailing fields None), without its per-row Python overhead.
            reader = csv.reader(text)
            header = next(reader, None) or []
            missing = [c for c in required if c not in header]
            if missing:
                raise RowError(missing[0], f"required column {missing[0]!r} is missing "
                               f"(columns found: {', '.join(header) or 'none'})")
            unknown = [c for c in header if c not in allowed]
            if unknown:
                raise RowError(unknown[0], f"unknown column {unknown[0]!r} "
                               f"(allowed: {', '.join(sorted(allowed))})")
            width = len(header)
            n = 0
            for fields in reader:
                if not fields:
                    continue
                n += 1
                if len(fields) != width:
                    if len(fields) > width:
                        yield reader.line_num, {"__error__": "has more fields than the header",
                                                "__field__": "(row)"}
                        continue
                    absent: list[Any] = [None] * (width - len(fields))
                    yield reader.line_num, dict(zip(header, [*fields, *absent], strict=True))
                    continue
                if progress:
                    progress.update(n, counter.position)
                yield reader.line_num, dict(zip(header, fields, strict=True))
        else:
            for line_no, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, {"__error__": f"not valid JSON: {exc.msg}"}
                    continue
                if progress:
                    progress.update(line_no, counter.position)
                yield line_no, check_object(obj, allowed, "each line must be a JSON object")


def check_object(obj: Any, allowed: set[str] | frozenset[str], not_object: str) -> dict[str, Any]:
    """A JSON row as the validator takes it: the object, or an ``__error__`` row when it is not
    an object or has a field that is not a column."""
    if not isinstance(obj, dict):
        return {"__error__": not_object}
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        return {"__error__": f"unknown field {unknown[0]!r}", "__field__": str(unknown[0])}
    return obj
