"""``records import``: stream a CSV or JSON-lines file of record facts into the registry.

The whole file is one transaction. Rows are validated and written in batches (constant
memory); the first bad row stops all writing, the rest of the file is still read so that
every problem can be reported (up to ``MAX_PROBLEMS``), and then everything is rolled back.
Importing the same row again updates the record: a row states all of a record's facts, so an
empty optional column clears the stored value. Subject dates are shared by every record of
the subject: an empty ``date_of_birth`` keeps the one already known.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.reader import Progress, RowError, parse_date, read_rows
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.recompute import (
    recompute_records,
    recompute_where,
    register_policy,
    withdraw_stale_cases,
)
from retentiond.logs import get_logger
from retentiond.registry.models import Agreement, Controller, ImportRun, Record, Subject

REQUIRED = ("record_id", "category", "controller")
OPTIONAL = ("system", "locator", "subject_ref", "date_of_birth", "date_of_death", "opened_on",
            "closed_on", "event_on", "flags", "agreement")
BATCH = 2000
log = get_logger("retentiond.ingest")

_KEY_RE = re.compile(r"^[^\s;,][^\t\r\n]{0,199}$")
_FLAG_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True, kw_only=True)
class RecordImport:
    """What an import did."""

    import_id: int
    rows: int
    created: int
    updated: int
    due_dates_changed: int
    cases_withdrawn: int


@dataclass(frozen=True, kw_only=True, slots=True)
class _Row:
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


def _text(raw: dict[str, Any], field: str, *, limit: int) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(field, f"must be text, not {value!r}")
    value = value.strip()
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


class _Validator:
    def __init__(self, session: Session, categories: frozenset[str]) -> None:
        self.categories = categories
        self.controllers = {code: cid for code, cid in session.execute(
            select(Controller.code, Controller.id))}
        self.agreements = {code: aid for code, aid in session.execute(
            select(Agreement.code, Agreement.id))}

    def row(self, line: int, raw: dict[str, Any]) -> _Row:
        if "__error__" in raw:
            raise RowError(raw.get("__field__", "(row)"), raw["__error__"])
        for field in REQUIRED:
            if not _text(raw, field, limit=200):
                raise RowError(field, "is required")
        key = _text(raw, "record_id", limit=200)
        assert key is not None
        if not _KEY_RE.match(key):
            raise RowError("record_id", f"{key!r} is not a usable identifier")
        category = str(_text(raw, "category", limit=100))
        if category not in self.categories:
            raise RowError("category", f"unknown category {category!r}: no rule in the policy "
                           f"set covers it (known: {', '.join(sorted(self.categories))})")
        controller = str(_text(raw, "controller", limit=64))
        if controller not in self.controllers:
            raise RowError("controller", f"unknown controller {controller!r}: import it first "
                           "with 'retentiond controllers import'")
        agreement = _text(raw, "agreement", limit=64)
        if agreement is not None and agreement not in self.agreements:
            raise RowError("agreement", f"unknown agreement {agreement!r}")
        dates = {f: parse_date(f, raw.get(f)) for f in
                 ("date_of_birth", "date_of_death", "opened_on", "closed_on", "event_on")}
        subject_ref = _text(raw, "subject_ref", limit=128)
        if subject_ref is None:
            for field in ("date_of_birth", "date_of_death"):
                if dates[field] is not None:
                    raise RowError(field, "is given without a subject_ref to attach it to")
        dob, dod = dates["date_of_birth"], dates["date_of_death"]
        if dob and dod and dod < dob:
            raise RowError("date_of_death", "is before date_of_birth")
        if dates["opened_on"] and dates["closed_on"] and dates["closed_on"] < dates["opened_on"]:
            raise RowError("closed_on", "is before opened_on")
        return _Row(
            line=line, record_key=key, category=category,
            controller_id=self.controllers[controller],
            agreement_id=self.agreements.get(agreement) if agreement else None,
            system=_text(raw, "system", limit=100), locator=_text(raw, "locator", limit=2000),
            subject_ref=subject_ref, date_of_birth=dob, date_of_death=dod,
            opened_on=dates["opened_on"], closed_on=dates["closed_on"],
            event_on=dates["event_on"], flags=_flags(raw),
        )


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


class _Writer:
    """Upserts batches of validated rows inside the import's transaction."""

    def __init__(self, ctx: Context, session: Session, run: ImportRun) -> None:
        self.ctx, self.session, self.run = ctx, session, run
        self.now = ctx.clock.now()
        self.created = self.updated = self.changed = 0
        self.more = 0
        self.subjects_changed: set[int] = set()
        self.sqlite = session.get_bind().dialect.name == "sqlite"
        conn = session.connection()
        if self.sqlite:
            # SQLite has no ON COMMIT DROP: close() drops it; a rollback undoes its creation.
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{_STATED.name}")
        _STATED.create(conn)

    def close(self) -> None:
        """Drop the temporary table before the transaction commits (PostgreSQL drops it then)."""
        if self.sqlite:
            self.session.connection().exec_driver_sql(f"DROP TABLE temp.{_STATED.name}")

    def _problem(self, problems: list[str], text: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)
        else:
            self.more += 1

    def _stated_dates(self, rows: list[_Row], problems: list[str],
                      path: str) -> dict[str, dict[str, tuple[dt.date, int]]]:
        """The subject dates the file states, up to and including these rows, as
        ``{ref: {field: (date, line)}}`` for every subject the rows name. A date that differs
        from one an earlier line stated is a problem."""
        refs = sorted({r.subject_ref for r in rows if r.subject_ref is not None})
        stated: dict[str, dict[str, tuple[dt.date, int]]] = {}
        for was in self.session.execute(select(_STATED).where(_STATED.c.ref.in_(refs))):
            stated[was.ref] = {f: (getattr(was, f), getattr(was, f"{f}_line"))
                               for f in _SUBJECT_DATES if getattr(was, f) is not None}
        known = set(stated)
        grew: set[str] = set()
        for row in rows:
            if row.subject_ref is None:
                continue
            dates = stated.setdefault(row.subject_ref, {})
            for field in _SUBJECT_DATES:
                value = getattr(row, field)
                if value is None:
                    continue
                if field not in dates:
                    dates[field] = (value, row.line)
                    grew.add(row.subject_ref)
                elif dates[field][0] != value:
                    self._problem(problems, f"{path}:{row.line}: {field}: differs from line "
                                  f"{dates[field][1]} for the same subject_ref")
        memos: list[dict[str, Any]] = []
        for ref in sorted(grew):
            memo: dict[str, Any] = {"b_ref": ref}
            for field in _SUBJECT_DATES:
                memo[field], memo[f"{field}_line"] = stated[ref].get(field, (None, None))
            memos.append(memo)
        if fresh := [{"ref": m["b_ref"], **m} for m in memos if m["b_ref"] not in known]:
            self.session.execute(insert(_STATED), [
                {k: v for k, v in m.items() if k != "b_ref"} for m in fresh])
        if grown := [m for m in memos if m["b_ref"] in known]:
            self.session.execute(
                update(_STATED).where(_STATED.c.ref == bindparam("b_ref"))
                .values({c.name: bindparam(c.name) for c in _STATED.c if c.name != "ref"}),
                grown)
        return stated

    def _subjects(self, rows: list[_Row], problems: list[str], path: str) -> dict[str, int]:
        stated = self._stated_dates(rows, problems, path)
        if not stated:
            return {}
        existing = {s.ref: s for s in self.session.scalars(
            select(Subject).where(Subject.ref.in_(list(stated))))}
        new: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for ref, given in stated.items():
            subject = existing.get(ref)
            dob = given["date_of_birth"][0] if "date_of_birth" in given else (
                subject.date_of_birth if subject else None)
            dod = given["date_of_death"][0] if "date_of_death" in given else (
                subject.date_of_death if subject else None)
            if dob and dod and dod < dob:
                field = "date_of_death" if "date_of_death" in given else "date_of_birth"
                self._problem(problems, f"{path}:{given[field][1]}: {field}: the subject's "
                              "date_of_death would be before its date_of_birth")
            if subject is None:
                new.append({"ref": ref, "date_of_birth": dob, "date_of_death": dod,
                            "updated_at": self.now})
            elif (dob, dod) != (subject.date_of_birth, subject.date_of_death):
                changes.append({"id": subject.id, "date_of_birth": dob, "date_of_death": dod,
                                "updated_at": self.now})
                self.subjects_changed.add(subject.id)
        if new:
            self.session.execute(insert(Subject), new)
        if changes:
            self.session.execute(update(Subject), changes)
        return {ref: sid for ref, sid in self.session.execute(
            select(Subject.ref, Subject.id).where(Subject.ref.in_(list(stated))))}

    def write(self, rows: list[_Row], problems: list[str], path: str) -> None:
        subject_ids = self._subjects(rows, problems, path)
        keys = [r.record_key for r in rows]
        existing = {key: (rid, last) for key, rid, last in self.session.execute(
            select(Record.record_key, Record.id, Record.last_import_id)
            .where(Record.record_key.in_(keys)))}
        seen: dict[str, int] = {}
        inserts, updates = [], []
        for row in rows:
            if row.record_key in seen or existing.get(row.record_key, (0, None))[1] == self.run.id:
                where = f"line {seen[row.record_key]}" if row.record_key in seen else "an earlier line"
                self._problem(problems,
                              f"{path}:{row.line}: record_id: {row.record_key!r} is also on {where}")
                continue
            seen[row.record_key] = row.line
            values = {
                "category": row.category, "controller_id": row.controller_id,
                "agreement_id": row.agreement_id, "system": row.system, "locator": row.locator,
                "subject_id": subject_ids.get(row.subject_ref) if row.subject_ref else None,
                "opened_on": row.opened_on, "closed_on": row.closed_on, "event_on": row.event_on,
                "flags": row.flags, "last_import_id": self.run.id, "updated_at": self.now,
            }
            if row.record_key in existing:
                updates.append({"id": existing[row.record_key][0], **values})
            else:
                inserts.append({"record_key": row.record_key, "created_at": self.now,
                                "approvals_required": 1, "auto_approve": False, **values})
        # Rows are written even once the file is known to be refused (the transaction is rolled
        # back): later batches are checked against them, so every duplicate and every
        # conflicting subject date in the file is reported, not only those before the first
        # problem.
        if inserts:
            self.session.execute(insert(Record), inserts)
        if updates:
            self.session.execute(update(Record), updates)
        self.created += len(inserts)
        self.updated += len(updates)
        if problems:
            return
        ids = list(self.session.scalars(select(Record.id).where(Record.record_key.in_(keys))))
        self.changed += recompute_records(self.ctx, self.session, ids)


def import_records(ctx: Context, path: Path, *, fmt: str = "csv",
                   progress: Progress | None = None) -> RecordImport:
    """Import a file of record facts; refuse it whole (``ImportRefused``) if any row is wrong."""
    name = str(path)
    problems: list[str] = []
    more = 0
    try:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImportRefused(name, [f"{name}: cannot be read: {exc.strerror}"]) from exc
    with ctx.sessions() as session:
        try:
            with session.begin():
                register_policy(session, ctx.policy, ctx.clock.now())
                run = ImportRun(kind="records", filename=path.name, sha256=digest.hexdigest(),
                                actor=ctx.actor, started_at=ctx.clock.now())
                session.add(run)
                session.flush()
                validator = _Validator(session, ctx.policy.categories)
                writer = _Writer(ctx, session, run)
                batch: list[_Row] = []
                count = 0
                try:
                    for line, raw in read_rows(path, fmt, required=REQUIRED, optional=OPTIONAL,
                                               progress=progress):
                        count += 1
                        try:
                            batch.append(validator.row(line, raw))
                        except RowError as exc:
                            if len(problems) < MAX_PROBLEMS:
                                problems.append(f"{name}:{line}: {exc.field}: {exc}")
                            else:
                                more += 1
                        if len(batch) >= BATCH:
                            writer.write(batch, problems, name)
                            batch = []
                except RowError as exc:
                    problems.append(f"{name}:1: {exc.field}: {exc}")
                except UnicodeDecodeError as exc:
                    problems.append(f"{name}: file: is not UTF-8 text ({exc.reason})")
                if batch:
                    writer.write(batch, problems, name)
                more += writer.more
                if progress:
                    progress.done(count)
                if not problems and count == 0:
                    problems.append(f"{name}: file: has no rows")
                if problems:
                    # Not logged here: the caller reports the refusal first, then logs it.
                    raise ImportRefused(name, problems[:MAX_PROBLEMS],
                                        more=more + max(0, len(problems) - MAX_PROBLEMS))
                if writer.subjects_changed:
                    writer.changed += recompute_where(
                        ctx, session, Record.subject_id.in_(sorted(writer.subjects_changed)))
                withdrawn = withdraw_stale_cases(ctx, session)
                writer.close()
                run.rows, run.created, run.updated = count, writer.created, writer.updated
                record_event(
                    session, kind="RecordsImported", actor=ctx.actor, entity="import",
                    entity_id=run.id, at=ctx.clock.now(), policy_version=ctx.policy.version,
                    data={"file": path.name, "sha256": run.sha256, "rows": count,
                          "created": writer.created, "updated": writer.updated,
                          "due_dates_changed": writer.changed, "cases_withdrawn": withdrawn},
                )
        except ImportRefused:
            raise
    log.info("import_finished", import_id=run.id, file=path.name, rows=count,
             created=writer.created, updated=writer.updated, due_dates_changed=writer.changed,
             cases_withdrawn=withdrawn)
    return RecordImport(import_id=run.id, rows=count, created=writer.created,
                        updated=writer.updated, due_dates_changed=writer.changed,
                        cases_withdrawn=withdrawn)
