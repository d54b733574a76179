"""Running sources: when each is due, one run all or nothing, its outcome recorded.

A run is one transaction: every file an inbox run applies (each in a savepoint, so that a
refused file leaves nothing behind while the others stand), or the whole of a query, with
the run's ``source_runs`` row and its ``SourceRunFinished`` audit event. A run that is
refused (a bad row in a query) or fails (the warehouse is down) changes no record; its
outcome is recorded in a transaction of its own. On PostgreSQL an advisory lock per source
makes sure that, of several instances, one runs it at a time; the lock lasts as long as the
run's transaction.

When a source is due: ``cron`` (Europe/London) or ``interval_s`` after the start of its last
run, whatever that run's outcome; a source that never ran is due at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.records import (
    Feed,
    LocatorCheck,
    RecordImport,
    apply_feed,
    file_feed,
)
from retentiond.lifecycle.context import Context
from retentiond.logs import describe_error, get_logger
from retentiond.registry.models import AuditEvent, ImportRun, Record, SourceRun
from retentiond.sources import inbox
from retentiond.sources.settings import SourceSpec
from retentiond.sources.sql import query_rows

log = get_logger("retentiond.sources")
_LOCK_KEY = 74210003
#: The counts every run reports (an inbox run adds files_done and files_refused).
COUNTS = ("rows", "created", "updated", "unchanged", "due_dates_changed", "cases_withdrawn",
          "gone", "back")


@dataclass(frozen=True, kw_only=True)
class SourceOutcome:
    """What one run of one source did."""

    source: str
    #: ok, refused (bad input: nothing of it applied), failed (could not run), or skipped
    #: (not due, or another instance has it).
    outcome: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    run_id: int | None = None
    note: str = ""


def next_run_at(spec: SourceSpec, last_started: dt.datetime | None,
                now: dt.datetime) -> dt.datetime | None:
    """When the source is next due (``now`` if it never ran); None when disabled."""
    if not spec.enabled:
        return None
    if last_started is None:
        return now
    if spec.interval_s is not None:
        return last_started + dt.timedelta(seconds=spec.interval_s)
    from retentiond.cron import LondonCronTrigger

    assert spec.cron is not None
    after = last_started + dt.timedelta(microseconds=1)
    fire: dt.datetime | None = LondonCronTrigger(spec.cron).get_next_fire_time(None, after)
    return fire.astimezone(dt.UTC) if fire is not None else None


def last_started(session: Session, name: str) -> dt.datetime | None:
    value: dt.datetime | None = session.scalar(
        select(func.max(SourceRun.started_at)).where(SourceRun.source == name))
    return value


def _locked(session: Session, name: str) -> bool:
    """This transaction holds the source (PostgreSQL: an advisory lock; SQLite has one
    writer, and one instance)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(name.encode()) - (1 << 31)
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_LOCK_KEY, key))))


def _sum(into: dict[str, int], result: RecordImport) -> None:
    for key, value in result.counts().items():
        into[key] = into.get(key, 0) + value


def _problems(exc: ImportRefused) -> list[str]:
    more = [f"(and {exc.more} more)"] if exc.more else []
    return [*exc.problems[:MAX_PROBLEMS], *more]


class _Inbox:
    """One inbox run: the files it claimed and what became of each."""

    def __init__(self, ctx: Context, spec: SourceSpec, run: SourceRun,
                 wait: Callable[[float], Any], locators: LocatorCheck | None) -> None:
        self.ctx, self.spec, self.run, self.wait = ctx, spec, run, wait
        self.locators = locators
        assert spec.path is not None
        self.folder = spec.path
        self.finished: list[tuple[inbox.Claimed, str, dict[str, Any]]] = []

    def look(self) -> list[Path]:
        """The files that are whole, found before the run's transaction begins (the look
        waits ``settle_s``: no lock is held meanwhile)."""
        inbox.prepare(self.folder)
        return inbox.ready_files(self.folder, self.spec.settle_s, self.wait)

    def apply(self, session: Session, stop: threading.Event | None,
              ready: list[Path]) -> dict[str, int]:
        counts = dict.fromkeys((*COUNTS, "files_done", "files_refused"), 0)
        todo: list[inbox.Claimed] = []
        for claimed in inbox.left_in_work(self.folder):
            done = session.scalar(select(ImportRun.id).where(
                ImportRun.filename == claimed.path.name))
            if done is None:
                todo.append(claimed)
                continue
            # Applied by a run that died before it could move the file: only finish it.
            data = session.scalar(select(AuditEvent.data).where(
                AuditEvent.kind == "RecordsImported", AuditEvent.entity == "import",
                AuditEvent.entity_id == str(done)))
            self.finished.append((claimed, "done", {"import_id": done, "counts": {
                k: (data or {}).get(k, 0) for k in COUNTS}, "recovered": True}))
        now = self.ctx.clock.now()
        for path in ready:
            try:
                todo.append(inbox.claim(path, now))
            except FileNotFoundError:
                continue  # another instance claimed it since the look
        for claimed in todo:
            if stop is not None and stop.is_set():
                break  # left in work/: the next run reads it
            feed = file_feed(claimed.path, fmt=claimed.fmt, name=claimed.original,
                             source=self.spec.name, full=self.spec.full,
                             extra={"source_run_id": self.run.id})
            try:
                with session.begin_nested():
                    result = apply_feed(self.ctx, session, feed, filename=claimed.path.name,
                                        locators=self.locators)
            except ImportRefused as exc:
                counts["files_refused"] += 1
                self.finished.append((claimed, "refused", {"problems": _problems(exc)}))
                continue
            counts["files_done"] += 1
            _sum(counts, result)
            self.finished.append((claimed, "done", {"import_id": result.import_id,
                                                    "counts": result.counts()}))
        return counts

    def errors(self) -> list[str]:
        out: list[str] = []
        for _claimed, outcome, receipt in self.finished:
            if outcome == "refused":
                out += receipt["problems"][:5]
        return out[:MAX_PROBLEMS]

    def move(self) -> None:
        """After the commit: each file to done/ or refused/, with its receipt."""
        for claimed, outcome, receipt in self.finished:
            try:
                inbox.finish(claimed, outcome, {"source": self.spec.name,
                                                "source_run_id": self.run.id, **receipt})
            except OSError as exc:
                log.error("inbox_move_failed", source=self.spec.name, file=claimed.path.name,
                          error=exc.strerror)


def run_source(ctx: Context, spec: SourceSpec, *, stop: threading.Event | None = None,
               force: bool = False, wait: Callable[[float], Any] | None = None,
               locators: LocatorCheck | None = None) -> SourceOutcome:
    """Run one source if it is due (or ``force``); see the module's docstring. ``locators``
    checks each row's locator with its system's connector, as ``records import`` does."""
    waiter = wait or (stop.wait if stop is not None else threading.Event().wait)
    started = ctx.clock.now()
    job: _Inbox | None = None
    with ctx.sessions() as session:
        try:
            ready: list[Path] = []
            if spec.kind == "inbox":
                due = next_run_at(spec, last_started(session, spec.name), started)
                if not force and (due is None or due > started):
                    return SourceOutcome(source=spec.name, outcome="skipped", note="not due")
                session.rollback()
                job = _Inbox(ctx, spec, SourceRun(), waiter, locators)
                ready = job.look()
            with session.begin():
                if not _locked(session, spec.name):
                    return SourceOutcome(source=spec.name, outcome="skipped",
                                         note="another instance is running it")
                due = next_run_at(spec, last_started(session, spec.name), started)
                if not force and (due is None or due > started):
                    return SourceOutcome(source=spec.name, outcome="skipped", note="not due")
                run = SourceRun(source=spec.name, kind=spec.kind, mode=spec.mode,
                                started_at=started, outcome="running", counts={}, errors=[],
                                actor=ctx.actor)
                session.add(run)
                session.flush()
                if job is not None:
                    job.run = run
                    counts = job.apply(session, stop, ready)
                    errors = job.errors()
                    outcome = "refused" if counts["files_refused"] else "ok"
                else:
                    feed = Feed(name=f"[sources.{spec.name}]", rows=lambda: query_rows(spec),
                                source=spec.name, full=spec.full,
                                extra={"source_run_id": run.id})
                    counts = apply_feed(ctx, session, feed, filename=f"[sources.{spec.name}]",
                                        locators=locators).counts()
                    errors, outcome = [], "ok"
                _finish(ctx, session, run, spec, outcome, counts, errors)
                run_id = run.id
        except ImportRefused as exc:
            errors = _problems(exc)
            run_id = _record_failure(ctx, spec, started, "refused", errors)
            log.warning("source_refused", source=spec.name, problems=len(exc.problems) + exc.more)
            return SourceOutcome(source=spec.name, outcome="refused", errors=errors, run_id=run_id)
        except Exception as exc:
            error = describe_error(exc)
            run_id = _record_failure(ctx, spec, started, "failed", [error])
            log.error("source_failed", source=spec.name, error=error)
            return SourceOutcome(source=spec.name, outcome="failed", errors=[error], run_id=run_id)
    if job is not None:
        job.move()
    log.info("source_run_finished", source=spec.name, outcome=outcome, **counts)
    return SourceOutcome(source=spec.name, outcome=outcome, counts=counts, errors=errors,
                         run_id=run_id)


def _finish(ctx: Context, session: Session, run: SourceRun, spec: SourceSpec, outcome: str,
            counts: dict[str, int], errors: list[str]) -> None:
    run.finished_at, run.outcome, run.counts, run.errors = ctx.clock.now(), outcome, counts, errors
    record_event(session, kind="SourceRunFinished", actor=ctx.actor, entity="source",
                 entity_id=spec.name, at=run.finished_at, policy_version=ctx.policy.version,
                 data={"run_id": run.id, "kind": spec.kind, "mode": spec.mode,
                       "outcome": outcome, **counts, "errors": len(errors)})


def _record_failure(ctx: Context, spec: SourceSpec, started: dt.datetime, outcome: str,
                    errors: list[str]) -> int:
    """A refused or failed run, in a transaction of its own (the run's was rolled back)."""
    with ctx.sessions.begin() as session:
        run = SourceRun(source=spec.name, kind=spec.kind, mode=spec.mode, started_at=started,
                        outcome=outcome, counts={}, errors=errors, actor=ctx.actor)
        session.add(run)
        session.flush()
        _finish(ctx, session, run, spec, outcome, {}, errors)
        return run.id


def run_due_sources(ctx: Context, specs: Sequence[SourceSpec], *,
                    stop: threading.Event | None = None,
                    locators: LocatorCheck | None = None) -> list[SourceOutcome]:
    """Run, in turn, every enabled source that is due; stop between sources when asked."""
    out = []
    for spec in specs:
        if stop is not None and stop.is_set():
            break
        if spec.enabled:
            out.append(run_source(ctx, spec, stop=stop, locators=locators))
    return out


@dataclass(frozen=True, kw_only=True)
class SourceStatus:
    """A source as the Sources page, the CLI and the metrics show it."""

    spec: SourceSpec
    last: SourceRun | None
    next_run_at: dt.datetime | None
    gone: int

    def as_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "name": self.spec.name, "kind": self.spec.kind, "mode": self.spec.mode,
            "schedule": self.spec.describe(),
            "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
            "gone_at_source": self.gone,
            "last_run": None if last is None else {
                "id": last.id, "outcome": last.outcome, "started_at": last.started_at.isoformat(),
                "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                "counts": last.counts, "errors": last.errors},
        }


def source_statuses(session: Session, specs: Sequence[SourceSpec],
                    now: dt.datetime) -> list[SourceStatus]:
    """Every configured source with its last run, next run and records gone at source."""
    latest = {run.source: run for run in session.scalars(
        select(SourceRun).where(SourceRun.id.in_(
            select(func.max(SourceRun.id)).group_by(SourceRun.source))))}
    gone = gone_by_source(session)
    out = []
    for spec in specs:
        last = latest.get(spec.name)
        out.append(SourceStatus(spec=spec, last=last, gone=gone.get(spec.name, 0),
                                next_run_at=next_run_at(spec, last_started(session, spec.name),
                                                        now)))
    return out


def gone_by_source(session: Session) -> dict[str, int]:
    """Records flagged gone at source, by their source."""
    return {str(k): int(v) for k, v in session.execute(
        select(Record.source, func.count()).where(Record.gone_at_source_at.is_not(None))
        .group_by(Record.source))}
