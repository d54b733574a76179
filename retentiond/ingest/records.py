"""``records import``: stream a CSV or JSON-lines file of record facts into the registry.

The whole file is one transaction. A reader thread parses and validates the rows in batches
(constant memory), one batch ahead of the writer. The writer decides each row's due date in
Python (the policy engine, through recompute's decision cache) and writes each record once,
with its decision: by ``COPY`` and set-based statements on PostgreSQL, by prepared
``executemany`` on SQLite. A bad row does not stop the reading: the rest of the file is still
read and written, so that every problem (duplicates and conflicting subject dates across
batches included) can be reported, up to ``MAX_PROBLEMS``, and then everything is rolled back.
Importing a changed row again updates the record: a row states all of a record's facts, so an
empty optional column clears the stored value. A row identical to the one last applied to its
record (same facts, same feed: compared by ``records.facts_digest``) is not written at all, so
re-reading an unchanged extract costs reading it. Subject dates are shared by every record of
the subject: an empty ``date_of_birth`` keeps the one already known.

The same writer serves every feed (``Feed``): a file (``records import`` and inbox sources), a
query (SQL sources, ``retentiond/sources``) and a batch pushed through the API. A feed that is
a full extract of its source also reconciles: a record of that source the feed no longer lists
is flagged "gone at source" (never deleted); any feed that lists a flagged record again clears
the flag. Both are audited, one event a record.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from retentiond.audit import note_inserted, record_event
from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.reader import Progress, RowError, Rows, parse_date, read_rows, refuse_invisible
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.recompute import (
    _decider,
    recompute_where,
    register_policy,
    withdraw_stale_cases,
)
from retentiond.logs import get_logger
from retentiond.registry.models import (
    Agreement,
    AuditEvent,
    Controller,
    Disposal,
    ImportRun,
    Record,
    Subject,
)

REQUIRED = ("record_id", "category", "controller")
OPTIONAL = ("system", "locator", "subject_ref", "date_of_birth", "date_of_death", "opened_on",
            "closed_on", "event_on", "flags", "agreement")
#: Rows written a batch: one COPY (PostgreSQL) or executemany (SQLite) each; at most 32,766
#: on SQLite, which binds every key of a batch in one lookup.
BATCH = 10_000
log = get_logger("retentiond.ingest")

_KEY_RE = re.compile(r"^[^\s;,][^\t\r\n]{0,199}$")
_FLAG_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True, kw_only=True)
class RecordImport:
    """What an import did."""

    import_id: int
    rows: int
    created: int
    #: Existing records whose row changed, and was written.
    updated: int
    due_dates_changed: int
    cases_withdrawn: int
    #: Existing records whose row was the one last applied: not written.
    unchanged: int = 0
    #: Records of the feed's source that this full extract no longer lists: flagged.
    gone: int = 0
    #: Records flagged gone at source that this feed lists again: flag cleared.
    back: int = 0

    def counts(self) -> dict[str, int]:
        """The counts, for receipts, audit events and the Sources page."""
        return {"rows": self.rows, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "due_dates_changed": self.due_dates_changed,
                "cases_withdrawn": self.cases_withdrawn, "gone": self.gone, "back": self.back}


#: Where a problem is, for messages: ``FILE:LINE`` for a file.
Where = Callable[[int], str]


@dataclass(frozen=True, kw_only=True)
class Feed:
    """Rows of record facts from somewhere, and whom they speak for.

    ``rows`` is called once, in the reader's thread, and yields ``(line, row)`` as
    ``read_rows`` does (``__error__`` for a row that cannot be read); raising ``RowError``
    refuses the feed at line 1 (its header), any other exception fails it.
    """

    #: What the feed is called in messages and in the import's row (a file's name).
    name: str
    rows: Callable[[], Rows]
    #: ``[sources.NAME]`` (or ``api``) that the records written become fed by; None for
    #: ``records import``.
    source: str | None = None
    #: A full extract of ``source``: reconcile (flag what it no longer lists).
    full: bool = False
    sha256: str | None = None
    #: ``where(line)`` for messages; default ``NAME:LINE``.
    where: Where | None = None
    #: Data for the ``RecordsImported`` audit event (e.g. the source's run).
    extra: dict[str, Any] = field(default_factory=dict)

    def at(self, line: int) -> str:
        return self.where(line) if self.where is not None else f"{self.name}:{line}"


class _Row(NamedTuple):
    """One validated row (a tuple: a batch holds thousands of them)."""

    line: int
    record_key: str
    category: str
    controller_id: int
    agreement_id: int | None
    system: str | None
    locator: str | None
    subject_ref: str | None
    date_of_birth: dt.date | None
    date_of_death: dt.date | None
    opened_on: dt.date | None
    closed_on: dt.date | None
    event_on: dt.date | None
    flags: str


def _clean(value: Any, field: str, limit: int) -> str | None:
    """A text field, stripped; empty is None."""
    if value is None:
        return None
    if value.__class__ is not str:
        raise RowError(field, f"must be text, not {value!r}")
    value = refuse_invisible(field, value.strip())
    if len(value) > limit:
        raise RowError(field, f"is longer than {limit} characters")
    return value or None


def _flags(raw: dict[str, Any]) -> str:
    value = raw.get("flags")
    if value is None or value == "":
        return ""
    items = value if isinstance(value, list) else str(value).split(";")
    flags = sorted({str(f).strip() for f in items if str(f).strip()})
    for flag in flags:
        if not _FLAG_RE.match(flag):
            raise RowError("flags", f"{flag!r} is not a flag name (lower-case letters, digits, "
                           "'_' and '-', separated by ';')")
    return ";".join(flags)


_DATE_FIELDS = ("date_of_birth", "date_of_death", "opened_on", "closed_on", "event_on")
_DATES_AS_IS = frozenset({dt.date, type(None)})
#: ``_Row(...)`` without the Python-level ``__new__`` of a named tuple (a row is built a
#: million times a re-sync).
_new_row = tuple.__new__
#: Dates remembered by their text: a file repeats a few tens of thousands of dates over
#: millions of rows; the bound keeps memory flat.
_DATE_MEMO = 100_000


#: ``(system, locator) -> problem or None``: whether the connector of a record's system can
#: name its locator exactly (``retentiond.connectors.LocatorCheck``).
LocatorCheck = Callable[[str | None, str], str | None]


class _Validator:
    def __init__(self, session: Session, categories: frozenset[str],
                 locators: LocatorCheck | None = None) -> None:
        self.categories = categories
        self.locators = locators
        self.controllers = {code: cid for code, cid in session.execute(
            select(Controller.code, Controller.id))}
        self.agreements = {code: aid for code, aid in session.execute(
            select(Agreement.code, Agreement.id))}
        #: What a decision reads of a terminated agreement (recompute's fact columns).
        self.terminated: dict[int, tuple[dt.date | None, str | None]] = {
            aid: (due, action) for aid, due, action in session.execute(
                select(Agreement.id, Agreement.disposal_due_on, Agreement.termination_action)
                .where(Agreement.status == "terminated"))}
        self.dates: dict[str, dt.date | None] = {}

    def _dates(self, raw: dict[str, Any]) -> list[dt.date | None]:
        given = list(map(raw.get, _DATE_FIELDS))
        if _DATES_AS_IS.issuperset(map(type, given)):
            return given  # a query's DATE columns (never a timestamp), or nothing
        memo = self.dates
        out: list[dt.date | None] = []
        for name, value in zip(_DATE_FIELDS, given, strict=True):
            if value is None or value == "":
                out.append(None)
                continue
            if value.__class__ is dt.date:
                out.append(value)
                continue
            if value.__class__ is str and value in memo:
                out.append(memo[value])
                continue
            date = parse_date(name, value)
            if value.__class__ is str:
                if len(memo) >= _DATE_MEMO:
                    memo.clear()
                memo[value] = date
            out.append(date)
        return out

    def row(self, line: int, raw: dict[str, Any]) -> _Row:
        """Check one row; the first thing wrong with it is a ``RowError`` naming the field."""
        if "__error__" in raw:
            raise RowError(raw.get("__field__", "(row)"), raw["__error__"])
        get = raw.get
        key = _clean(get("record_id"), "record_id", 200)
        if not key:
            raise RowError("record_id", "is required")
        category = _clean(get("category"), "category", 200)
        if not category:
            raise RowError("category", "is required")
        controller = _clean(get("controller"), "controller", 200)
        if not controller:
            raise RowError("controller", "is required")
        # ``_KEY_RE``, given what ``_clean`` already made sure of (stripped, no control or
        # separator character but the space, at most 200 characters), is only this
        # (tests/unit/test_record_key_check.py holds the two equal).
        if key[0] in ";,":
            raise RowError("record_id", f"{key!r} is not a usable identifier")
        if len(category) > 100:
            raise RowError("category", "is longer than 100 characters")
        if category not in self.categories:
            raise RowError("category", f"unknown category {category!r}: no rule in the policy "
                           f"set covers it (known: {', '.join(sorted(self.categories))})")
        if len(controller) > 64:
            raise RowError("controller", "is longer than 64 characters")
        controller_id = self.controllers.get(controller)
        if controller_id is None:
            raise RowError("controller", f"unknown controller {controller!r}: import it first "
                           "with 'retentiond controllers import'")
        agreement = _clean(get("agreement"), "agreement", 64)
        agreement_id = None
        if agreement is not None:
            agreement_id = self.agreements.get(agreement)
            if agreement_id is None:
                raise RowError("agreement", f"unknown agreement {agreement!r}")
        dob, dod, opened_on, closed_on, event_on = self._dates(raw)
        subject_ref = _clean(get("subject_ref"), "subject_ref", 128)
        if subject_ref is None:
            if dob is not None:
                raise RowError("date_of_birth", "is given without a subject_ref to attach it to")
            if dod is not None:
                raise RowError("date_of_death", "is given without a subject_ref to attach it to")
        if dob and dod and dod < dob:
            raise RowError("date_of_death", "is before date_of_birth")
        if opened_on and closed_on and closed_on < opened_on:
            raise RowError("closed_on", "is before opened_on")
        system = _clean(get("system"), "system", 100)
        locator = _clean(get("locator"), "locator", 2000)
        if locator is not None and self.locators is not None:
            problem = self.locators(system, locator)
            if problem is not None:
                raise RowError("locator", problem)
        flags = get("flags")
        return _new_row(_Row, (line, key, category, controller_id, agreement_id, system,
                               locator, subject_ref, dob, dod, opened_on, closed_on, event_on,
                               "" if flags is None or flags == "" else _flags(raw)))


#: The subject dates this file has stated so far, with the line that stated each: a file may
#: state a subject's date once (on as many rows as it likes), never two different ones. Kept in
#: a temporary table, not in memory, so that a large file streams in constant memory however
#: far apart the rows of one subject are. It lives only as long as the import's transaction.
_STATED = Table(
    "retentiond_import_subject_dates", MetaData(),
    Column("ref", String(128), primary_key=True),
    Column("date_of_birth", Date), Column("date_of_birth_line", Integer),
    Column("date_of_death", Date), Column("date_of_death_line", Integer),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
_SUBJECT_DATES = ("date_of_birth", "date_of_death")

#: Every row the feed listed (but for duplicates already reported), by line: for the records
#: it lists (reconciliation), duplicates across batches, and the subject dates that unchanged
#: rows state (they are not written, but must still agree with the rows that are). A
#: temporary table, like the one above, so that memory stays flat.
_SEEN = Table(
    "retentiond_import_seen", MetaData(),
    Column("record_key", String(200)), Column("line", Integer),
    Column("subject_ref", String(128)), Column("date_of_birth", Date),
    Column("date_of_death", Date),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
_SEEN_COLS = ("record_key", "line", "subject_ref", "date_of_birth", "date_of_death")


#: The columns an import writes to a record, in the order of the tuples it prepares: the facts
#: of the row, then its decision (what ``recompute`` stores), then the bookkeeping.
_FACT_COLS = ("category", "controller_id", "agreement_id", "subject_id", "system", "locator",
              "opened_on", "closed_on", "event_on", "flags")
_DECISION_COLS = ("due_on", "due_action", "due_rule", "approvals_required", "auto_approve",
                  "needs_attention", "policy_version", "rules_digest")
_WRITTEN = (*_FACT_COLS, *_DECISION_COLS, "last_import_id", "source", "facts_digest",
            "updated_at")
_INSERTED = ("record_key", *_WRITTEN, "created_at")
_UPDATED = (*_WRITTEN, "id")
_SUBJECT_COLS = ("ref", "date_of_birth", "date_of_death", "updated_at")
_STATED_COLS = ("ref", "date_of_birth", "date_of_birth_line", "date_of_death", "date_of_death_line")
_NOT_TERMINATED: tuple[None, None] = (None, None)
_RECORDS = cast(Table, Record.__table__)
_SUBJECTS = cast(Table, Subject.__table__)

#: ``(id, last_import_id, due_on, facts_digest)`` of a stored record, by key.
_Stored = dict[str, tuple[int, int | None, dt.date | None, str | None]]
#: A row of a batch as the writer sorts it: ``(record_key, line, facts_digest, subject_ref,
#: date_of_birth, date_of_death)``.
_Listed = tuple[str, int, str, str | None, dt.date | None, dt.date | None]
#: The rows of a batch that are not plainly unchanged: ``(line, stored)`` in line order, where
#: ``stored`` is ``(id, last_import_id, due_on, facts_digest)``, or None for a new record.
_Special = list[tuple[int, tuple[int, int | None, dt.date | None, str | None] | None]]
#: ``(id, date_of_birth, date_of_death)`` of a subject, by reference.
_Subjects = dict[str, tuple[int, dt.date | None, dt.date | None]]


class _Prepared:
    """One INSERT or UPDATE, run as an executemany of prepared tuples (no ORM objects, no
    per-row parameter dictionaries). Values go through SQLAlchemy's own bind processors for
    each column, so they are stored exactly as the ORM would store them; a batch repeats many
    values (one timestamp, a few thousand dates), and each is converted once."""

    def __init__(self, statement: Any, names: tuple[str, ...], table: Table,
                 dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        order = list(compiled.positiontup) if compiled.positiontup is not None else list(names)
        self.positional = compiled.positiontup is not None
        self.order = order
        self.steps = tuple(
            (names.index(n.removeprefix("b_")),
             table.c[n.removeprefix("b_")].type.dialect_impl(dialect).bind_processor(dialect))
            for n in order)

    def run(self, session: Session, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        # Column by column: each distinct value of a column that needs converting is
        # converted once, then the columns are zipped back into rows (both at C speed).
        columns = list(zip(*rows, strict=True))
        out: list[Any] = []
        for i, process in self.steps:
            column = columns[i]
            if process is not None:
                seen = {v: None if v is None else process(v) for v in set(column)}
                column = tuple(map(seen.__getitem__, column))
            out.append(column)
        values: list[Any] = list(zip(*out, strict=True))
        if not self.positional:
            values = [dict(zip(self.order, v, strict=True)) for v in values]
        session.connection().exec_driver_sql(self.sql, values)


def _dates_in(rows: Any, *where: int) -> list[tuple[Any, ...]]:
    """Rows read through the driver, with the ISO dates (as SQLite stores them) at the given
    positions made dates again."""
    memo: dict[str, dt.date] = {}
    out = []
    for row in rows:
        row = list(row)
        for i in where:
            text = row[i]
            if text is not None:
                date = memo.get(text)
                if date is None:
                    date = memo[text] = dt.date.fromisoformat(text)
                row[i] = date
        out.append(tuple(row))
    return out


class _SqliteIO:
    """The writer's reads and writes on SQLite: one writer, one transaction, executemany."""

    def __init__(self, session: Session) -> None:
        self.session = session
        dialect = session.get_bind().dialect
        conn = session.connection()
        # SQLite has no ON COMMIT DROP: close() drops it; a rollback undoes its creation.
        for table in (_STATED, _SEEN):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{table.name}")
            table.create(conn)
        self.insert_records = _Prepared(
            insert(_RECORDS).values({c: bindparam(c) for c in _INSERTED}), _INSERTED, _RECORDS,
            dialect)
        self.update_records = _Prepared(
            update(_RECORDS).where(_RECORDS.c.id == bindparam("b_id"))
            .values({c: bindparam(c) for c in _WRITTEN}), _UPDATED, _RECORDS, dialect)
        self.insert_subjects = _Prepared(
            insert(_SUBJECTS).values({c: bindparam(c) for c in _SUBJECT_COLS}), _SUBJECT_COLS,
            _SUBJECTS, dialect)
        self.update_subjects = _Prepared(
            update(_SUBJECTS).where(_SUBJECTS.c.ref == bindparam("b_ref"))
            .values({c: bindparam(c) for c in _SUBJECT_COLS[1:]}), (*_SUBJECT_COLS[1:], "ref"),
            _SUBJECTS, dialect)
        self.insert_stated = _Prepared(
            insert(_STATED).values({c: bindparam(c) for c in _STATED_COLS}), _STATED_COLS,
            _STATED, dialect)
        self.update_stated = _Prepared(
            update(_STATED).where(_STATED.c.ref == bindparam("b_ref"))
            .values({c: bindparam(c) for c in _STATED_COLS[1:]}), (*_STATED_COLS[1:], "ref"),
            _STATED, dialect)
        self.insert_seen = _Prepared(
            insert(_SEEN).values({c: bindparam(c) for c in _SEEN_COLS}), _SEEN_COLS, _SEEN,
            dialect)

    def close(self) -> None:
        for table in (_STATED, _SEEN):
            self.session.connection().exec_driver_sql(f"DROP TABLE temp.{table.name}")

    def save_seen(self, rows: list[tuple[Any, ...]]) -> None:
        self.insert_seen.run(self.session, rows)

    def errors(self, what: str) -> AbstractContextManager[None]:
        """Errors come through SQLAlchemy already."""
        return nullcontext()

    def _read(self, sql: str, values: list[str]) -> Any:
        """``sql`` for these values, straight through the driver: SQLAlchemy's statement and
        parameter handling for 10,000 bound keys costs more than SQLite's lookups. The values
        go as one JSON array, so that the statement is the same for every batch (one bound
        parameter a key would make each batch's count of keys a new statement for sqlite3's
        statement cache to keep: memory that grew with the file). ``json_each`` is SQLite's
        JSON1, built in since 3.38."""
        return self.session.connection().exec_driver_sql(sql, (json.dumps(values),))

    def stated(self, refs: list[str]) -> list[tuple[Any, ...]]:
        return _dates_in(self._read(
            "SELECT ref, date_of_birth, date_of_birth_line, date_of_death, date_of_death_line "
            "FROM temp.retentiond_import_subject_dates "
            "WHERE ref IN (SELECT value FROM json_each(?))", refs), 1, 3)

    def save_stated(self, fresh: list[tuple[Any, ...]], grown: list[tuple[Any, ...]]) -> None:
        self.insert_stated.run(self.session, fresh)
        self.update_stated.run(self.session, [(*m[1:], m[0]) for m in grown])

    def subjects(self, refs: list[str]) -> _Subjects:
        return {ref: (sid, dob, dod) for ref, sid, dob, dod in _dates_in(self._read(
            "SELECT ref, id, date_of_birth, date_of_death FROM subjects "
            "WHERE ref IN (SELECT value FROM json_each(?))", refs), 2, 3)}

    def write_subjects(self, new: list[tuple[Any, ...]],
                       changed: list[tuple[Any, ...]]) -> dict[str, int]:
        self.insert_subjects.run(self.session, new)
        self.update_subjects.run(self.session, [(*c[1:], c[0]) for c in changed])
        if not new:
            return {}
        refs = [n[0] for n in new]
        return {ref: sid for ref, sid in self._read(
            "SELECT ref, id FROM subjects WHERE ref IN (SELECT value FROM json_each(?))", refs)}

    def records(self, keys: list[str]) -> _Stored:
        return {key: (rid, last, due, digest) for key, rid, last, due, digest in _dates_in(
            self._read("SELECT record_key, id, last_import_id, due_on, facts_digest FROM records "
                       "WHERE record_key IN (SELECT value FROM json_each(?))", keys), 3)}

    def sort(self, batch: list[_Listed], run_id: int) -> _Special:
        """The rows of the batch that are not plainly unchanged (new, changed, or a record this
        import already wrote), in line order. Every row goes to ``_SEEN`` but those of records
        this import already wrote (each is a problem: the key is listed twice); the plainly
        unchanged ones with their subject dates, the others (to be written, and checked with
        their subject dates as they are written) without. Keys are distinct within ``batch``."""
        existing = self.records([b[0] for b in batch])
        special: _Special = []
        seen: list[tuple[Any, ...]] = []
        for key, line, digest, ref, dob, dod in batch:
            stored = existing.get(key)
            if stored is None or stored[3] != digest or stored[1] == run_id:
                special.append((line, stored))
                if stored is None or stored[1] != run_id:
                    seen.append((key, line, None, None, None))
            else:
                seen.append((key, line, ref, dob, dod))
        self.save_seen(seen)
        return special

    def write_records(self, inserts: list[tuple[Any, ...]],
                      updates: list[tuple[Any, ...]]) -> None:
        self.insert_records.run(self.session, inserts)
        self.update_records.run(self.session, updates)


# PostgreSQL: each batch goes to the server by COPY (psycopg 3's ``cursor.copy()``, text
# format, rows formatted by psycopg's C dumpers) and set-based statements, on the raw
# connection of the session's own transaction, so that the import stays all or nothing. The
# statements are built from the constant column names above, never from input.
_PG_SETUP = (
    # Staging for re-imported records and for new or changed subjects; the shape of the
    # real columns, no constraints; dropped at the end of the transaction.
    "CREATE TEMPORARY TABLE retentiond_import_records ON COMMIT DROP AS "  # noqa: S608
    "SELECT " + ", ".join(_UPDATED) + " FROM records WITH NO DATA",
    "CREATE TEMPORARY TABLE retentiond_import_subjects ON COMMIT DROP AS "  # noqa: S608
    "SELECT " + ", ".join(_SUBJECT_COLS) + " FROM subjects WITH NO DATA",
)
_PG_STATED = ("SELECT " + ", ".join(_STATED_COLS) + " FROM retentiond_import_subject_dates "  # noqa: S608
              "WHERE ref = ANY(%s)")
_PG_COPY_STATED = ("COPY retentiond_import_subject_dates (" + ", ".join(_STATED_COLS)
                   + ") FROM STDIN")
_PG_GROW_STATED = ("UPDATE retentiond_import_subject_dates SET date_of_birth = %s, "
                   "date_of_birth_line = %s, date_of_death = %s, date_of_death_line = %s "
                   "WHERE ref = %s")
_PG_SUBJECTS = ("SELECT ref, id, date_of_birth, date_of_death FROM subjects "
                "WHERE ref = ANY(%s)")
_PG_COPY_SUBJECTS = ("COPY retentiond_import_subjects (" + ", ".join(_SUBJECT_COLS)
                     + ") FROM STDIN")
_PG_COPY_NEW_SUBJECTS = "COPY subjects (" + ", ".join(_SUBJECT_COLS) + ") FROM STDIN"
_PG_SUBJECT_IDS = "SELECT ref, id FROM subjects WHERE ref = ANY(%s)"
_PG_UPDATE_SUBJECTS = (
    "UPDATE subjects AS s SET date_of_birth = c.date_of_birth, "
    "date_of_death = c.date_of_death, updated_at = c.updated_at "
    "FROM retentiond_import_subjects AS c WHERE s.ref = c.ref"
)
#: A batch's keys and digests, sent once (one COPY), sorted by one statement that looks each
#: key up (LATERAL ... LIMIT 1: an index probe a row, whatever the planner thinks of a table
#: without statistics), notes the rows in ``_SEEN`` on the server (as ``_SqliteIO.sort``
#: says), and returns only those that are not plainly unchanged: an unchanged batch sends its
#: keys once and reads nothing back.
_PG_BATCH_COLS = ("record_key", "line", "facts_digest", "subject_ref", "date_of_birth",
                  "date_of_death")
_PG_CREATE_BATCH = ("CREATE TEMPORARY TABLE retentiond_import_batch (record_key VARCHAR(200), "
                    "line INTEGER, facts_digest VARCHAR(32), subject_ref VARCHAR(128), "
                    "date_of_birth DATE, date_of_death DATE) ON COMMIT DROP")
_PG_COPY_BATCH = ("COPY retentiond_import_batch (" + ", ".join(_PG_BATCH_COLS)
                  + ") FROM STDIN (FORMAT BINARY)")
#: Binary COPY: about half the work of text, on both sides, for a million rows a re-sync.
_PG_BATCH_TYPES = ("varchar", "int4", "varchar", "varchar", "date", "date")
_PG_SORT_BATCH = (
    "WITH b AS (SELECT b.record_key, b.line, b.subject_ref, b.date_of_birth, "  # noqa: S608
    "b.date_of_death, "
    "r.id, r.last_import_id, r.due_on, r.facts_digest, "
    "coalesce(r.facts_digest = b.facts_digest AND r.last_import_id IS DISTINCT FROM %(run)s, "
    "false) AS same "
    "FROM retentiond_import_batch AS b LEFT JOIN LATERAL (SELECT id, last_import_id, due_on, "
    "facts_digest FROM records WHERE records.record_key = b.record_key LIMIT 1) AS r ON true), "
    "noted AS (INSERT INTO retentiond_import_seen (" + ", ".join(_SEEN_COLS) + ") "
    "SELECT record_key, line, CASE WHEN same THEN subject_ref END, "
    "CASE WHEN same THEN date_of_birth END, CASE WHEN same THEN date_of_death END "
    "FROM b WHERE last_import_id IS DISTINCT FROM %(run)s) "
    "SELECT line, id, last_import_id, due_on, facts_digest FROM b WHERE NOT same ORDER BY line"
)
#: What the import made for itself, dropped when it ends: ``ON COMMIT DROP`` alone would leave
#: them to a second import in the same transaction (an inbox run applies each file in turn).
_PG_TEMPORARY = ("retentiond_import_records", "retentiond_import_subjects", "retentiond_import_batch",
                 "retentiond_import_subject_dates", "retentiond_import_seen")
_PG_COPY_RECORDS = "COPY records (" + ", ".join(_INSERTED) + ") FROM STDIN"
_PG_COPY_UPDATES = "COPY retentiond_import_records (" + ", ".join(_UPDATED) + ") FROM STDIN"
_PG_UPDATE_RECORDS = (
    "UPDATE records AS r SET " + ", ".join(f"{c} = s.{c}" for c in _WRITTEN)  # noqa: S608
    + " FROM retentiond_import_records AS s WHERE r.id = s.id"
)


class _PostgresIO:
    """The writer's reads and writes on PostgreSQL: COPY and one statement a batch."""

    def __init__(self, session: Session) -> None:
        conn = session.connection()
        _STATED.create(conn)
        _SEEN.create(conn)
        # The psycopg connection under the session's: same transaction.
        self.raw: Any = conn.connection.driver_connection
        assert self.raw is not None
        with self.errors("records import: staging tables"), self.raw.cursor() as cur:
            for sql in (*_PG_SETUP, _PG_CREATE_BATCH):
                cur.execute(sql)

    def close(self) -> None:
        with self.raw.cursor() as cur:
            cur.execute("DROP TABLE " + ", ".join(_PG_TEMPORARY))

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """psycopg's errors as SQLAlchemy's (``IntegrityError``, ``OperationalError``...), as
        every other statement of the import raises them."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise DBAPIError.instance(what, None, exc, psycopg.Error) from exc

    def _copy(self, sql: str, rows: list[tuple[Any, ...]] | list[_Listed],
              types: tuple[str, ...] | None = None) -> None:
        with self.raw.cursor() as cur, cur.copy(sql) as copy:
            if types is not None:
                copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)

    def stated(self, refs: list[str]) -> list[tuple[Any, ...]]:
        with self.raw.cursor() as cur:
            return list(cur.execute(_PG_STATED, (refs,)))

    def save_stated(self, fresh: list[tuple[Any, ...]], grown: list[tuple[Any, ...]]) -> None:
        if fresh:
            self._copy(_PG_COPY_STATED, fresh)
        if grown:
            with self.raw.cursor() as cur:
                cur.executemany(_PG_GROW_STATED, [(*m[1:], m[0]) for m in grown])

    def subjects(self, refs: list[str]) -> _Subjects:
        with self.raw.cursor() as cur:
            return {ref: (sid, dob, dod) for ref, sid, dob, dod in
                    cur.execute(_PG_SUBJECTS, (refs,))}

    def write_subjects(self, new: list[tuple[Any, ...]],
                       changed: list[tuple[Any, ...]]) -> dict[str, int]:
        # New subjects straight into the table (the batch's references were just looked up
        # in this transaction), then their ids; changed ones through the staging table and
        # one UPDATE ... FROM.
        ids: dict[str, int] = {}
        if new:
            self._copy(_PG_COPY_NEW_SUBJECTS, new)
            with self.raw.cursor() as cur:
                ids = {ref: sid for ref, sid in
                       cur.execute(_PG_SUBJECT_IDS, ([n[0] for n in new],))}
        if changed:
            self._copy(_PG_COPY_SUBJECTS, changed)
            with self.raw.cursor() as cur:
                cur.execute(_PG_UPDATE_SUBJECTS)
                cur.execute("TRUNCATE retentiond_import_subjects")
        return ids

    def sort(self, batch: list[_Listed], run_id: int) -> _Special:
        """As ``_SqliteIO.sort``: one COPY and one statement a batch."""
        self._copy(_PG_COPY_BATCH, batch, _PG_BATCH_TYPES)
        with self.raw.cursor() as cur:
            special: _Special = [
                (line, None if rid is None else (rid, last, due, digest))
                for line, rid, last, due, digest in cur.execute(_PG_SORT_BATCH, {"run": run_id})]
            cur.execute("TRUNCATE retentiond_import_batch")
        return special

    def write_records(self, inserts: list[tuple[Any, ...]],
                      updates: list[tuple[Any, ...]]) -> None:
        # New records straight into the table: the batch's keys were just looked up in this
        # transaction, so none can conflict (a concurrent import of the same key fails the
        # COPY on the unique index, and the whole import rolls back).
        if inserts:
            self._copy(_PG_COPY_RECORDS, inserts)
        if updates:
            self._copy(_PG_COPY_UPDATES, updates)
            with self.raw.cursor() as cur:
                cur.execute(_PG_UPDATE_RECORDS)
                cur.execute("TRUNCATE retentiond_import_records")


class _Reprs(dict[Any, str]):
    """``repr`` of a date (or None), remembered: a feed repeats a few tens of thousands of
    dates over millions of rows, and ``repr`` of a date is most of the cost of a digest. The
    bound keeps memory flat."""

    def __missing__(self, value: Any) -> str:
        if len(self) >= _DATE_MEMO:
            self.clear()
        text = self[value] = repr(value)
        return text


_DATE_REPRS = _Reprs()


def facts_digest(source: str | None, row: _Row, _dates: _Reprs = _DATE_REPRS,
                 _blake2b: Any = hashlib.blake2b) -> str:
    """What a row states (every fact but its line) and which feed stated it, digested: equal
    digests, equal rows. 16 bytes of BLAKE2b: a collision would need ~2^64 rows.

    The text digested is exactly ``repr((source, *row[1:]))`` (the repr of a tuple of str,
    int, date and None is stable across runs and versions), which is what every stored digest
    was made from: it is built here by one f-string with the dates' reprs remembered, at half
    the cost of ``repr`` of the tuple. ``tests/unit/test_facts_digest.py`` holds the two equal."""
    (_, key, category, controller_id, agreement_id, system, locator, subject_ref, dob, dod,
     opened_on, closed_on, event_on, flags) = row
    return cast(str, _blake2b(
        f"({source!r}, {key!r}, {category!r}, {controller_id!r}, {agreement_id!r}, "
        f"{system!r}, {locator!r}, {subject_ref!r}, {_dates[dob]}, {_dates[dod]}, "
        f"{_dates[opened_on]}, {_dates[closed_on]}, {_dates[event_on]}, {flags!r})".encode(),
        digest_size=16).hexdigest())


class _Writer:
    """Writes batches of validated rows inside the import's transaction: each changed record
    once, with its decision, which is computed here from the row's facts, its subject's dates
    and its agreement's termination (the same decision ``recompute`` would store). A row equal
    to the one last applied to its record is only noted (``_SEEN``), not written."""

    def __init__(self, ctx: Context, session: Session, run: ImportRun,
                 terminated: dict[int, tuple[dt.date | None, str | None]],
                 source: str | None) -> None:
        self.ctx, self.session, self.run, self.source = ctx, session, run, source
        self.now = ctx.clock.now()
        self.created = self.updated = self.changed = self.unchanged = 0
        self.more = 0
        self.subjects_changed: set[int] = set()
        self.terminated = terminated
        self.decide = _decider(ctx.policy)
        self.digests: dict[str, str] = {}
        self.io: _SqliteIO | _PostgresIO = (
            _PostgresIO(session) if session.get_bind().dialect.name == "postgresql"
            else _SqliteIO(session))

    def close(self) -> None:
        """Drop what the import made for itself before the transaction commits."""
        self.io.close()

    def _problem(self, problems: list[str], text: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)
        else:
            self.more += 1

    def _stated_dates(self, rows: list[_Row], problems: list[str],
                      at: Where) -> dict[str, dict[str, tuple[dt.date, int]]]:
        """The subject dates the file states, up to and including these rows, as
        ``{ref: {field: (date, line)}}`` for every subject the rows name. A date that differs
        from one an earlier line stated is a problem."""
        refs = sorted({r.subject_ref for r in rows if r.subject_ref is not None})
        stated: dict[str, dict[str, tuple[dt.date, int]]] = {}
        if not refs:
            return stated
        for ref, dob, dob_line, dod, dod_line in self.io.stated(refs):
            was = stated[ref] = {}
            if dob is not None:
                was["date_of_birth"] = (dob, dob_line)
            if dod is not None:
                was["date_of_death"] = (dod, dod_line)
        known = set(stated)
        grew: set[str] = set()
        for row in rows:
            if row.subject_ref is None:
                continue
            dates = stated.setdefault(row.subject_ref, {})
            for field_name in _SUBJECT_DATES:
                value = getattr(row, field_name)
                if value is None:
                    continue
                if field_name not in dates:
                    dates[field_name] = (value, row.line)
                    grew.add(row.subject_ref)
                elif dates[field_name][0] != value:
                    self._problem(problems, f"{at(row.line)}: {field_name}: differs from line "
                                  f"{dates[field_name][1]} for the same subject_ref")
        fresh: list[tuple[Any, ...]] = []
        grown: list[tuple[Any, ...]] = []
        for ref in sorted(grew):
            memo = (ref, *stated[ref].get("date_of_birth", (None, None)),
                    *stated[ref].get("date_of_death", (None, None)))
            (grown if ref in known else fresh).append(memo)
        self.io.save_stated(fresh, grown)
        return stated

    def _subjects(self, rows: list[_Row], problems: list[str], at: Where) -> _Subjects:
        """Create or update the subjects the rows name; return each one's id and dates."""
        stated = self._stated_dates(rows, problems, at)
        if not stated:
            return {}
        existing = self.io.subjects(list(stated))
        out: _Subjects = {}
        new: list[tuple[Any, ...]] = []
        changes: list[tuple[Any, ...]] = []
        for ref, given in stated.items():
            subject = existing.get(ref)
            dob = given["date_of_birth"][0] if "date_of_birth" in given else (
                subject[1] if subject else None)
            dod = given["date_of_death"][0] if "date_of_death" in given else (
                subject[2] if subject else None)
            if dob and dod and dod < dob:
                which = "date_of_death" if "date_of_death" in given else "date_of_birth"
                self._problem(problems, f"{at(given[which][1])}: {which}: the subject's "
                              "date_of_death would be before its date_of_birth")
            if subject is None:
                new.append((ref, dob, dod, self.now))
            elif (dob, dod) != (subject[1], subject[2]):
                changes.append((ref, dob, dod, self.now))
                self.subjects_changed.add(subject[0])
                out[ref] = (subject[0], dob, dod)
            else:
                out[ref] = subject
        ids = self.io.write_subjects(new, changes)
        for ref, dob, dod, _ in new:
            out[ref] = (ids[ref], dob, dod)
        return out

    def write(self, rows: list[_Row], listed: list[_Listed], problems: list[str],
              at: Where) -> None:
        """Write one batch (and its subjects); add what is wrong with it to ``problems``.
        ``listed`` is the batch as ``_Listed`` (with its digests), row for row."""
        with self.io.errors("records import: write a batch"):
            self._write(rows, listed, problems, at)

    def _sort(self, rows: list[_Row], batch: list[_Listed], problems: list[str],
              at: Where) -> list[tuple[_Row, str, Any]]:
        """The batch's rows that must be written, with their digests and stored values;
        every row listed goes to ``_SEEN`` (by ``io.sort``; with the subject dates of those
        not written).

        A key listed twice in the batch is a problem on its later lines (the first is sorted
        as any row); a key this import already wrote (an earlier batch) is a problem on every
        line of the batch that lists it. The rows go to the database once, with their digests
        (``io.sort``), and only those that are not plainly unchanged come back."""
        run_id = self.run.id
        found: list[tuple[int, str]] = []
        first: dict[str, int] = {}
        again: list[tuple[int, str]] = []
        if len({b[0] for b in batch}) != len(batch):
            for key, line, *_ in batch:
                if key in first:
                    again.append((line, key))
                else:
                    first[key] = line
            twice = {line for line, _ in again}
            batch = [b for b in batch if b[1] not in twice]
        special = self.io.sort(batch, run_id)
        self.unchanged += len(batch) - len(special)
        by_line = {row.line: row for row in rows} if special else {}
        written_before: set[str] = set()
        changed: list[tuple[_Row, str, Any]] = []
        digests = {b[1]: b[2] for b in batch} if special else {}
        for line, stored in special:
            row = by_line[line]
            if stored is not None and stored[1] == run_id:
                written_before.add(row.record_key)
                found.append((line, f"{at(line)}: record_id: {row.record_key!r} is also on an "
                              "earlier line"))
                continue
            changed.append((row, digests[line], stored))
        for line, key in again:
            where = "an earlier line" if key in written_before else f"line {first[key]}"
            found.append((line, f"{at(line)}: record_id: {key!r} is also on {where}"))
        for _, problem in sorted(found):
            self._problem(problems, problem)
        return changed

    def _write(self, rows: list[_Row], listed: list[_Listed], problems: list[str],
               at: Where) -> None:
        changed_rows = self._sort(rows, listed, problems, at)
        if not changed_rows:
            return
        subjects = self._subjects([r for r, _, _ in changed_rows], problems, at)
        run_id, now, version, source = self.run.id, self.now, self.ctx.policy.version, self.source
        decide, digests, terminated = self.decide, self.digests, self.terminated
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        changed = 0
        for row, facts, stored in changed_rows:
            if row.subject_ref is None:
                subject_id = dob = dod = None
            else:
                subject_id, dob, dod = subjects[row.subject_ref]
            ended = (terminated.get(row.agreement_id, _NOT_TERMINATED)
                     if row.agreement_id is not None else _NOT_TERMINATED)
            # A row of recompute's fact columns: decided (and remembered) the same way.
            decision = decide((None, row.category, row.opened_on, row.closed_on, row.event_on,
                               row.flags, dob, dod, *ended))
            digest = digests.get(row.category)
            if digest is None:
                digest = digests[row.category] = self.ctx.policy.category_digest(row.category)
            values = (row.category, row.controller_id, row.agreement_id, subject_id, row.system,
                      row.locator, row.opened_on, row.closed_on, row.event_on, row.flags,
                      *decision, version, digest, run_id, source, facts, now)
            if stored is None:
                inserts.append((row.record_key, *values, now))
                changed += decision[0] is not None
            else:
                updates.append((*values, stored[0]))
                changed += decision[0] != stored[2]
        # Rows are written even once the file is known to be refused (the transaction is rolled
        # back): later batches are checked against them, so every duplicate and every
        # conflicting subject date in the file is reported, not only those before the first
        # problem.
        self.io.write_records(inserts, updates)
        self.created += len(inserts)
        self.updated += len(updates)
        self.changed += changed

    def finish_checks(self, problems: list[str], at: Where) -> None:
        """What only the whole feed shows: a key listed twice where the first listing was not
        written (so the batches could not see it), and an unchanged row whose subject date
        differs from the one a written row states."""
        session, seen, stated = self.session, _SEEN, _STATED
        with self.io.errors("records import: final checks"):
            # Indexed and counted once it is whole: without statistics (autovacuum never sees
            # a temporary table) PostgreSQL plans the reconciliation as if it held a few rows,
            # and probes it by scanning it, once per record.
            session.execute(text(f"CREATE INDEX ix_{seen.name} ON {seen.name} (record_key)"))
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"ANALYZE {seen.name}"))
                session.execute(text(f"ANALYZE {stated.name}"))
            twice = session.execute(
                select(seen.c.record_key, func.min(seen.c.line), func.max(seen.c.line))
                .group_by(seen.c.record_key).having(func.count() > 1)
                .order_by(func.max(seen.c.line)).limit(MAX_PROBLEMS + 1))
            for key, first, last in twice:
                self._problem(problems, f"{at(last)}: record_id: {key!r} is also on line {first}")
            for name in _SUBJECT_DATES:
                mine, theirs = seen.c[name], stated.c[name]
                conflicts = session.execute(
                    select(seen.c.line, stated.c[f"{name}_line"])
                    .join(stated, stated.c.ref == seen.c.subject_ref)
                    .where(mine.is_not(None), theirs.is_not(None), mine != theirs)
                    .order_by(seen.c.line).limit(MAX_PROBLEMS + 1))
                for line, other in conflicts:
                    self._problem(problems, f"{at(line)}: {name}: differs from line {other} "
                                  "for the same subject_ref")

    def reconcile(self, *, full: bool, source: str | None, at_name: str) -> tuple[int, int]:
        """Clear "gone at source" on every flagged record the feed lists, and, for a full
        extract, flag the records of its source that it does not list. Returns (gone, back)."""
        session, now = self.session, self.now
        listed = exists().where(_SEEN.c.record_key == Record.record_key)
        back = _flag_in_chunks(
            session, and_(Record.gone_at_source_at.is_not(None), listed), None, now,
            "RecordBackAtSource", self.ctx.policy.version,
            {"source": source, "listed_by": at_name, "import_id": self.run.id},
            actor=self.ctx.actor)
        gone = 0
        if full and source is not None:
            # Disposed of (or being disposed of) by this service: a source that stops listing
            # it is expected, not news.
            disposed = exists().where(Disposal.record_id == Record.id,
                                      Disposal.state.in_(_DISPOSED_STATES))
            gone = _flag_in_chunks(
                session, and_(Record.source == source, Record.gone_at_source_at.is_(None),
                              ~listed, ~disposed), now, now, "RecordGoneAtSource",
                self.ctx.policy.version,
                {"source": source, "extract": at_name, "import_id": self.run.id},
                actor=self.ctx.actor)
        return gone, back


#: States in which this service has deleted a record's data, or is doing so.
_DISPOSED_STATES = ("executing", "pending_confirmation", "executed", "certified", "notified")
_EVENTS = cast(Table, AuditEvent.__table__)
_FLAG_CHUNK = 5000


def _flag_in_chunks(session: Session, condition: Any, value: dt.datetime | None,
                    now: dt.datetime, kind: str, version: str, data: dict[str, Any], *,
                    actor: str) -> int:
    """Set ``gone_at_source_at`` to ``value`` on the records matching ``condition``, a chunk
    at a time by id, with one audit event each (by Core: a broken extract can flag many)."""
    total, after = 0, 0
    reason = ("a full extract of its source no longer lists it: it may have been disposed of "
              "outside this service (the controller must then be told) or mislaid"
              if value is not None else "a feed lists it again")
    while True:
        chunk = session.execute(
            select(Record.id, Record.record_key).where(condition, Record.id > after)
            .order_by(Record.id).limit(_FLAG_CHUNK)).all()
        if not chunk:
            return total
        after = chunk[-1][0]
        session.execute(update(Record).where(Record.id.in_([c[0] for c in chunk]))
                        .values(gone_at_source_at=value))
        events = [{"occurred_at": now, "kind": kind, "actor": actor, "entity": "record",
                   "entity_id": key, "reason": reason, "policy_version": version, "data": data}
                  for _, key in chunk]
        note_inserted(session, session.scalars(
            insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True), events))
        total += len(chunk)


@dataclass(frozen=True, kw_only=True)
class _Part:
    """A batch of validated rows and the problems found on the way (in line order)."""

    rows: list[_Row]
    #: The rows as the writer sorts them (``_Listed``: with their facts digests), row for row.
    listed: list[_Listed]
    problems: list[str]
    #: Why the rest of the file could not be read (its header, its encoding).
    refusals: tuple[str, ...] = ()
    count: int = 0
    last: bool = False
    error: BaseException | None = None


class _Reader:
    """Reads and validates the feed in a thread of its own, one batch ahead of the writer, so
    that parsing and checking the next batch overlaps with the database's work on this one
    (the writer waits on the server with the GIL released). The queue holds one batch:
    memory stays flat. Validation touches nothing but the validator's own lookups."""

    def __init__(self, feed: Feed, validator: _Validator) -> None:
        self.feed, self.validator = feed, validator
        self.queue: queue.Queue[_Part] = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="retentiond-import-reader",
                                       daemon=True)
        self.thread.start()

    def next(self) -> _Part:
        part = self.queue.get()
        if part.error is not None:
            raise part.error
        return part

    def close(self) -> None:
        """Stop the thread (the writer may have failed half-way) and wait for it."""
        self.stop.set()
        self.thread.join()

    def _put(self, part: _Part) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(part, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        feed, row = self.feed, self.validator.row
        at, name, source = feed.at, feed.name, feed.source
        batch: list[_Row] = []
        # Each row's digest is made here, not in the writer: the writer's thread waits on the
        # database for most of a batch, and this one has the interpreter meanwhile.
        listed: list[_Listed] = []
        found: list[str] = []
        refusals: list[str] = []
        count = 0
        try:
            rows = feed.rows()
            try:
                for line, raw in rows:
                    count += 1
                    try:
                        good = row(line, raw)
                    except RowError as exc:
                        found.append(f"{at(line)}: {exc.field}: {exc}")
                    else:
                        batch.append(good)
                        listed.append((good[1], line, facts_digest(source, good), good[7],
                                       good[8], good[9]))
                    if len(batch) >= BATCH:
                        if not self._put(_Part(rows=batch, listed=listed, problems=found)):
                            return
                        batch, listed, found = [], [], []
            except RowError as exc:
                refusals.append(f"{at(1)}: {exc.field}: {exc}")
            except UnicodeDecodeError as exc:
                refusals.append(f"{name}: file: is not UTF-8 text ({exc.reason})")
            except csv.Error as exc:
                refusals.append(f"{name}: file: cannot be read as CSV after row {count} ({exc})")
            finally:
                close = getattr(rows, "close", None)
                if close is not None:
                    close()  # a generator's finally (a file, a cursor) runs in this thread
            self._put(_Part(rows=batch, listed=listed, problems=found, refusals=tuple(refusals),
                            count=count,
                            last=True))
        except BaseException as exc:  # handed to the writer's thread, which raises it
            self._put(_Part(rows=[], listed=[], problems=[], error=exc, last=True))


def file_feed(path: Path, *, fmt: str = "csv", name: str | None = None,
              progress: Progress | None = None, **kw: Any) -> Feed:
    """A CSV or JSON-lines file as a feed (its SHA-256 read first; ``ImportRefused`` when it
    cannot be read)."""
    label = name or str(path)
    try:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImportRefused(label, [f"{label}: cannot be read: {exc.strerror}"]) from exc
    return Feed(name=label, sha256=digest.hexdigest(),
                rows=lambda: read_rows(path, fmt, required=REQUIRED, optional=OPTIONAL,
                                       progress=progress), **kw)


def apply_feed(ctx: Context, session: Session, feed: Feed, *, filename: str,
               progress: Progress | None = None,
               locators: LocatorCheck | None = None) -> RecordImport:
    """Apply a feed inside the caller's transaction (it must be in one); raise
    ``ImportRefused`` if any row is wrong, after which the caller must roll back (the
    transaction, or the savepoint it opened for this feed).

    ``locators``, when given, checks each row's locator with its system's connector: a
    locator the connector cannot name exactly is a wrong row (field ``locator``)."""
    problems: list[str] = []
    more = 0
    at = feed.at
    register_policy(session, ctx.policy, ctx.clock.now())
    run = ImportRun(kind="records", filename=filename[:1000], sha256=feed.sha256,
                    actor=ctx.actor, started_at=ctx.clock.now())
    session.add(run)
    session.flush()
    validator = _Validator(session, ctx.policy.categories, locators)
    writer = _Writer(ctx, session, run, validator.terminated, feed.source)
    count = 0
    reader = _Reader(feed, validator)
    try:
        while True:
            part = reader.next()
            for problem in part.problems:
                if len(problems) < MAX_PROBLEMS:
                    problems.append(problem)
                else:
                    more += 1
            problems.extend(part.refusals)
            if part.rows:
                writer.write(part.rows, part.listed, problems, at)
            if part.last:
                count = part.count
                break
    finally:
        reader.close()
    if not part.refusals:
        writer.finish_checks(problems, at)
    more += writer.more
    if progress:
        progress.done(count)
    if not problems and count == 0:
        problems.append(f"{feed.name}: file: has no rows")
    if problems:
        # Not logged here: the caller reports the refusal first, then logs it.
        raise ImportRefused(feed.name, problems[:MAX_PROBLEMS],
                            more=more + max(0, len(problems) - MAX_PROBLEMS))
    if writer.subjects_changed:
        writer.changed += recompute_where(
            ctx, session, Record.subject_id.in_(sorted(writer.subjects_changed)))
    gone, back = writer.reconcile(full=feed.full, source=feed.source, at_name=feed.name)
    withdrawn = withdraw_stale_cases(ctx, session)
    writer.close()
    run.rows, run.created, run.updated = count, writer.created, writer.updated
    result = RecordImport(import_id=run.id, rows=count, created=writer.created,
                          updated=writer.updated, due_dates_changed=writer.changed,
                          cases_withdrawn=withdrawn, unchanged=writer.unchanged, gone=gone,
                          back=back)
    record_event(
        session, kind="RecordsImported", actor=ctx.actor, entity="import",
        entity_id=run.id, at=ctx.clock.now(), policy_version=ctx.policy.version,
        data={"file": filename, "sha256": run.sha256, **result.counts(),
              **({"source": feed.source} if feed.source else {}), **feed.extra},
    )
    return result


def import_records(ctx: Context, path: Path, *, fmt: str = "csv",
                   progress: Progress | None = None,
                   locators: LocatorCheck | None = None) -> RecordImport:
    """Import a file of record facts; refuse it whole (``ImportRefused``) if any row is wrong
    (``locators``: as for :func:`apply_feed`)."""
    feed = file_feed(path, fmt=fmt, progress=progress)
    with ctx.sessions() as session, session.begin():
        result = apply_feed(ctx, session, feed, filename=path.name, progress=progress,
                            locators=locators)
    log.info("import_finished", import_id=result.import_id, file=path.name, rows=result.rows,
             created=result.created, updated=result.updated, unchanged=result.unchanged,
             due_dates_changed=result.due_dates_changed, cases_withdrawn=result.cases_withdrawn,
             back_at_source=result.back)
    return result
