"""The questions the daemon asks the registry for metrics, the digest and its status line.

Counts only: nothing here reads a subject or a record key, so nothing here can leak one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, exists, func, literal, not_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from retentiond.clock import Clock
from retentiond.lifecycle.sql import DONE_STATES, hold_covers_record
from retentiond.notify.addresses import REFUSED
from retentiond.registry.models import DISPOSAL_STATES, Disposal, Notification, Record, SourceRun

#: The state a record without any disposal case is in.
RETAINED = "retained"


@dataclass(frozen=True, kw_only=True)
class RegistryCounts:
    """What is in the registry on ``as_of``."""

    as_of: dt.date
    #: Records by the state of their latest disposal case (``retained`` when none).
    records: dict[str, int]
    #: Disposal cases by state; every state is present.
    disposals: dict[str, int]
    #: Records due on or before ``as_of`` and not yet disposed of.
    due: int
    #: Due more than the grace period ago, not disposed of, and nothing (a hold, a deferral,
    #: a rejection) explains why.
    overdue: int
    grace_days: int
    needs_attention: int
    oldest_pending_due_on: dt.date | None
    #: The earliest moment a case in cooling-off may be carried out (None when none cools off).
    cooling_off_earliest_end: dt.datetime | None = None
    #: When the longest-waiting exception was raised (its case's last change; None when none).
    oldest_exception_at: dt.datetime | None = None
    pending_by_category: dict[str, int] = field(default_factory=dict)
    #: Notices given up (the dead letters), and of those the webhooks refused because their
    #: address may not be sent to (link-local, metadata, private, http to another host).
    notifications_dead: int = 0
    webhooks_refused: int = 0
    #: Records a full extract of their source no longer lists, by source.
    gone_by_source: dict[str, int] = field(default_factory=dict)
    #: Each source's latest run: ``{"outcome", "finished_at" (Unix time), "counts"}``.
    sources: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def gone_at_source(self) -> int:
        return sum(self.gone_by_source.values())

    @property
    def sources_not_ok(self) -> int:
        """Sources whose latest run was refused or failed."""
        return sum(1 for s in self.sources.values() if s["outcome"] in ("refused", "failed"))

    @property
    def pending_review(self) -> int:
        return self.disposals.get("pending_review", 0)

    @property
    def failed(self) -> int:
        return self.disposals.get("failed", 0)


def _not_disposed() -> ColumnElement[bool]:
    return not_(exists().where(Disposal.record_id == Record.id, Disposal.state.in_(DONE_STATES)))


def registry_counts(session: Session, as_of: dt.date, grace_days: int) -> RegistryCounts:
    """Every count the daemon reports, in a handful of aggregate queries."""
    latest = (select(Disposal.record_id, func.max(Disposal.id).label("id"))
              .group_by(Disposal.record_id).subquery())
    state = func.coalesce(Disposal.state, literal(RETAINED)).label("state")
    records = dict(session.execute(
        select(state, func.count()).select_from(Record)
        .outerjoin(latest, latest.c.record_id == Record.id)
        .outerjoin(Disposal, Disposal.id == latest.c.id)
        .group_by(state)
    ).all())
    disposals = dict.fromkeys(DISPOSAL_STATES, 0)
    disposals.update(session.execute(
        select(Disposal.state, func.count()).group_by(Disposal.state)
    ).all())
    due = session.scalar(select(func.count()).select_from(Record).where(
        Record.due_on <= as_of, _not_disposed()
    ))
    overdue = session.scalar(select(func.count()).select_from(Record).where(
        Record.due_on < as_of - dt.timedelta(days=grace_days),
        _not_disposed(),
        not_(hold_covers_record(session, as_of)),
        or_(Record.deferred_until.is_(None), Record.deferred_until <= as_of),
        or_(Record.rejected_due_on.is_(None), Record.rejected_due_on != Record.due_on),
    ))
    attention = session.scalar(
        select(func.count()).select_from(Record).where(Record.needs_attention.is_not(None))
    )
    oldest = session.scalar(
        select(func.min(Disposal.due_on)).where(Disposal.state == "pending_review")
    )
    cooling_end, exception_at = session.execute(select(
        func.min(Disposal.cooling_until).filter(Disposal.state == "cooling_off"),
        func.min(Disposal.updated_at).filter(Disposal.state == "exception"),
    ).where(Disposal.state.in_(("cooling_off", "exception")))).one()
    by_category = dict(session.execute(
        select(Record.category, func.count()).join(Disposal, Disposal.record_id == Record.id)
        .where(Disposal.state == "pending_review").group_by(Record.category)
    ).all())
    dead, refused = session.execute(
        select(func.count(), func.count(Notification.id).filter(
            Notification.last_error.like(f"{REFUSED}%")))
        .select_from(Notification).where(Notification.state == "dead")
    ).one()
    gone = dict(session.execute(
        select(Record.source, func.count()).where(Record.gone_at_source_at.is_not(None))
        .group_by(Record.source)).all())
    sources = {
        run.source: {"outcome": run.outcome, "counts": dict(run.counts or {}),
                     "finished_at": (run.finished_at or run.started_at).timestamp()}
        for run in session.scalars(select(SourceRun).where(SourceRun.id.in_(
            select(func.max(SourceRun.id)).group_by(SourceRun.source))))}
    return RegistryCounts(
        as_of=as_of, notifications_dead=int(dead or 0), webhooks_refused=int(refused or 0),
        gone_by_source={str(k): int(v) for k, v in gone.items()}, sources=sources,
        records={str(k): int(v) for k, v in records.items()},
        disposals={str(k): int(v) for k, v in disposals.items()}, due=int(due or 0),
        overdue=int(overdue or 0), grace_days=grace_days, needs_attention=int(attention or 0),
        oldest_pending_due_on=oldest, cooling_off_earliest_end=cooling_end,
        oldest_exception_at=exception_at,
        pending_by_category={str(k): int(v) for k, v in by_category.items()},
    )


class CountsCache:
    """Counts at most ``max_age_s`` old, so that scrapes and status lines do not hammer the
    registry. ``peek`` never touches the database (the status loop must not block on it)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, *, grace_days: int,
                 max_age_s: float) -> None:
        self.sessions, self.clock = sessions, clock
        self.grace_days, self.max_age_s = grace_days, max_age_s
        self._lock = threading.Lock()
        self._value: RegistryCounts | None = None
        self._at = float("-inf")
        self.last_error: str | None = None

    def peek(self) -> RegistryCounts | None:
        return self._value

    def get(self, *, max_age_s: float | None = None) -> RegistryCounts:
        """Fresh enough counts; raises if the registry cannot be read."""
        limit = self.max_age_s if max_age_s is None else max_age_s
        with self._lock:
            if self._value is not None and time.monotonic() - self._at <= limit:
                return self._value
            try:
                with self.sessions() as session:
                    value = registry_counts(session, self.clock.today(), self.grace_days)
            except Exception as exc:
                self.last_error = type(exc).__name__
                raise
            self._value, self._at, self.last_error = value, time.monotonic(), None
            return value
