"""Execution: ``approved -> executing -> executed``, safely (DESIGN.md sections 3.6, 4 and 5).

Disposals are carried out a batch at a time: three short registry transactions per batch,
and between them connector calls made outside any transaction:

1. **claim**: ``approved`` cases whose backoff has passed are locked (PostgreSQL:
   ``FOR UPDATE SKIP LOCKED``, so instances share one queue; SQLite: one instance, and the
   guarded ``UPDATE`` takes the write lock), moved to ``executing`` with a lease (owner,
   until) and, **in the same transaction**, checked again: a case whose record an active hold
   covers goes to ``held``; one whose record is no longer due, or whose due date or action
   changed, is ``withdrawn``.
2. **start** (the batch, just before its connector work): the leases this owner still holds
   are renewed, and the hold and due-date checks are made once more, for the whole batch.
3. the **connectors** are called with each case's idempotency key ``disposal-{id}``: the
   batch's deletes are grouped by connector and sent together (``delete_many``, verified with
   ``exists_many``, for connectors that have them; otherwise ``delete`` and ``exists`` one
   case at a time); a delete counts only once verified gone. A return delivers its encrypted
   package and records the package's SHA-256 (a transaction of its own) before the source is
   deleted; a manual connector, and the action ``review``, open a task for a person instead.
   Every action not grouped (returns, anonymise, transfer, tasks) is carried out one case at
   a time, and each such case is checked again just before its own call, in a short
   transaction of its own (the lease, holds, the due date: a hold placed while the cases
   before it were worked on stops it), which also renews the leases of the whole batch. Before
   each group of deletes the leases are renewed too once a third of the lease has passed. So
   ``lease_s`` must cover one connector call (one ``delete_many``, one return), not a batch.
4. **finish** (the batch, one transaction), guarded case by case by the lease owner: each case
   is ``executed`` with its own execution row and ``DisposalExecuted`` audit event; or
   ``pending_confirmation``; or, after a transient error, back to ``approved`` with an
   exponential backoff; or, after a permanent error or too many attempts, ``failed``. One
   case's error is that case's alone.

A crash anywhere leaves the batch's cases ``executing`` with a lease that expires;
:func:`reap_leases` returns them to ``approved``, and the retry is safe because every step is
idempotent: deleting what is already gone is success, and a return whose package was recorded
is not made again (see :func:`_execute_batch` for the kill between the holding system's
commit and the registry's).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.audit.events import record_events
from retentiond.connectors import (
    Anonymiser,
    Connector,
    ConnectorError,
    ConnectorRef,
    ConnectorRegistry,
    PermanentConnectorError,
    Transferrer,
    TransientConnectorError,
    delete_each,
    exists_each,
    remaining_copies,
)
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.cooling import end_cooling
from retentiond.lifecycle.sql import among, hold_covers_record, short_of_approvers
from retentiond.logs import get_logger
from retentiond.registry.models import (
    AdvanceNoticeItem,
    Approval,
    Controller,
    ControllerSettings,
    Disposal,
    DisposalExecution,
    Notification,
    Record,
)

log = get_logger("retentiond.execute")

ACTOR = "retentiond:executor"
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_S = 60.0
DEFAULT_MAX_BACKOFF_S = 6 * 3600.0
ACTIONS = ("delete", "return", "anonymise", "transfer", "review")


@dataclass(frozen=True, kw_only=True)
class ExecuteResult:
    """What one call of :func:`execute_due` did, by outcome."""

    claimed: int = 0
    executed: int = 0
    pending_confirmation: int = 0
    #: Not found in the holding system on the first attempt: waiting for a person, in
    #: ``pending_confirmation`` (counted here, not there).
    not_found: int = 0
    retry_scheduled: int = 0
    failed: int = 0
    held: int = 0
    withdrawn: int = 0
    #: Claimed but given back untouched because ``stop`` was set.
    released: int = 0
    #: The lease was lost (reaped, and perhaps claimed by another instance) mid-way.
    lease_lost: int = 0
    #: Approved and ready, but their controller's advance notice has not run its course.
    waiting_for_notice: int = 0
    stopped: bool = False

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class _Work:
    """A claimed case and what its connector call needs (read in the start transaction)."""

    id: int
    action: str
    system: str | None
    locator: str | None
    record_key: str
    controller: str
    attempts: int
    package_name: str | None
    package_sha256: str | None
    #: The action was sent on an earlier attempt, after the data was seen present.
    sent: bool = False

    @property
    def key(self) -> str:
        return f"disposal-{self.id}"

    def ref(self) -> ConnectorRef:
        assert self.system is not None and self.locator is not None
        return ConnectorRef(self.system, self.locator, self.record_key,
                            controller=self.controller)


@dataclass(frozen=True, kw_only=True)
class _Done:
    connector: Connector
    method: str
    verification: str
    package: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class _NotFound:
    """The data was not in the holding system on the first attempt: a finding for a person,
    never a deletion (DESIGN.md section 4)."""

    connector: Connector
    system: str | None


@dataclass(frozen=True, kw_only=True)
class _Task:
    connector: Connector | None
    why: str


@dataclass(frozen=True, kw_only=True)
class _Failed:
    """A connector error for one case (its message holds no personal data)."""

    error: str
    permanent: bool
    error_type: str


class _LeaseLost(Exception):
    """This owner no longer holds the case's lease."""


class _Lost:
    """The outcome of a case whose lease was lost mid-way (a return's checkpoint found it)."""


@dataclass(frozen=True, kw_only=True)
class _Stopped:
    """The check just before a case's own connector call stopped it: ``held`` (a hold placed
    since the batch started) or ``withdrawn``; the state change and its event are committed."""

    state: str


_LOST = _Lost()
_Outcome = _Done | _Task | _NotFound | _Failed | _Lost | _Stopped

#: The action -> the outcome a certificate states for it once carried out and verified.
OUTCOMES = {"delete": "deleted", "return": "returned", "anonymise": "anonymised",
            "transfer": "transferred"}
#: Actions sent to a holding system, whose data must be seen there on a first attempt.
CONNECTOR_ACTIONS = tuple(OUTCOMES)


# --- checks ---------------------------------------------------------------------------------

def _stale_reason(case: Disposal, record: Record, today: dt.date) -> str | None:
    """Why the case may no longer be executed (its basis changed), or None."""
    if record.due_on is None:
        return "the record is no longer due under the policy in force"
    if record.due_on != case.due_on:
        return (f"the record's due date changed from {case.due_on.isoformat()} to "
                f"{record.due_on.isoformat()}")
    if case.due_on > today:
        return f"the record is not due until {case.due_on.isoformat()}"
    if record.due_action is not None and record.due_action != case.action:
        return f"the record's action changed from {case.action} to {record.due_action}"
    if record.due_rule is not None and record.due_rule != case.rule_id:
        return f"the record's rule changed from {case.rule_id} to {record.due_rule}"
    if record.approvals_required > case.approvals_required:
        return (f"the record's rule now needs {record.approvals_required} approvers, the case "
                f"had {case.approvals_required}")
    return None


def _held_ids(session: Session, ids: Iterable[int], today: dt.date) -> set[int]:
    return set(session.scalars(
        select(Disposal.id).join(Record, Record.id == Disposal.record_id)
        .where(among(session, Disposal.id, list(ids)), hold_covers_record(session, today))
    ))


def _stop_case(ctx: Context, session: Session, case: Disposal, *, state: str, kind: str,
               reason: str, now: dt.datetime) -> None:
    """Move an executing case to ``held`` or ``withdrawn``; its approvals are voided, so a
    person must approve it again once it may go ahead."""
    case.state, case.reason, case.updated_at = state, reason, now
    case.lease_owner = case.lease_until = None
    session.execute(update(Approval)
                    .where(Approval.disposal_id == case.id, Approval.voided_at.is_(None))
                    .values(voided_at=now))
    record_event(session, kind=kind, actor=ACTOR, entity="disposal", entity_id=case.id, at=now,
                 reason=reason, policy_version=ctx.policy.version,
                 data={"checked": "at execution, in the claiming transaction"})


def _recheck(ctx: Context, session: Session, cases: list[Disposal],
             now: dt.datetime) -> tuple[list[Disposal], int, int]:
    """Holds win, then the due date: return the cases that may go ahead, and how many were
    held and withdrawn."""
    today = ctx.clock.today()
    if not cases:
        return [], 0, 0
    held_ids = _held_ids(session, (c.id for c in cases), today)
    short = short_of_approvers(session, [c.id for c in cases])
    records = {r.id: r for r in session.scalars(
        select(Record).where(among(session, Record.id, [c.record_id for c in cases])))}
    ok: list[Disposal] = []
    held = withdrawn = 0
    for case in cases:
        if case.id in held_ids:
            _stop_case(ctx, session, case, state="held", kind="DisposalHeld", now=now,
                       reason="an active hold covers the record (checked at execution)")
            held += 1
        elif (why := short.get(case.id)
              or _stale_reason(case, records[case.record_id], today)) is not None:
            _stop_case(ctx, session, case, state="withdrawn", kind="DisposalWithdrawn",
                       now=now, reason=why)
            withdrawn += 1
        else:
            ok.append(case)
    return ok, held, withdrawn


# --- transactions ---------------------------------------------------------------------------

def notice_given(session: Session, now: dt.datetime) -> ColumnElement[bool]:
    """True for a case whose controller asked for no advance notice, or to whom an advance
    notice naming the case's record and due date was **delivered** (outbox state
    ``delivered``, not merely queued) at least the controller's notice period before ``now``.
    A controller's notice period is a wait (issue 10, class 7): nothing of theirs is carried
    out before it has run.

    The notice periods in use are few (7, 30, ...): one clause per period, each with its own
    cut-off instant, so no date arithmetic is done in SQL."""
    days = sorted(int(n) for n in session.scalars(
        select(ControllerSettings.advance_notice_days)
        .where(ControllerSettings.advance_notice_days > 0).distinct()) if n is not None)
    if not days:
        return true()

    def wants(*extra: ColumnElement[bool]) -> Any:
        return exists().where(ControllerSettings.controller_id == Record.controller_id,
                              Record.id == Disposal.record_id,
                              ControllerSettings.advance_notice_days > 0, *extra)

    clauses: list[ColumnElement[bool]] = [~wants()]
    for n in days:
        delivered = exists().where(
            AdvanceNoticeItem.record_id == Disposal.record_id,
            AdvanceNoticeItem.due_on == Disposal.due_on,
            Notification.advance_notice_id == AdvanceNoticeItem.notice_id,
            Notification.state == "delivered",
            Notification.delivered_at <= now - dt.timedelta(days=n))
        clauses.append(and_(wants(ControllerSettings.advance_notice_days == n), delivered))
    return or_(*clauses)


def _ready(now: dt.datetime) -> ColumnElement[bool]:
    return and_(Disposal.state == "approved",
                or_(Disposal.next_attempt_at.is_(None), Disposal.next_attempt_at <= now))


def waiting_for_notice(ctx: Context) -> int:
    """Approved cases ready to be carried out but for their controller's advance notice."""
    now = ctx.clock.now()
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Disposal).where(
            _ready(now), ~notice_given(session, now))) or 0)


def _claim(ctx: Context, *, owner: str, batch_size: int, lease_s: int,
           exclude: set[int]) -> tuple[list[int], int, int]:
    """Claim up to ``batch_size`` approved cases whose advance notice, if their controller
    wants one, has run its course: (claimed ids, held, withdrawn)."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        query = (
            select(Disposal.id)
            .where(_ready(now), notice_given(session, now))
            .order_by(Disposal.id).limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            query = query.where(Disposal.id.not_in(exclude))
        candidates = list(session.scalars(query))
        if not candidates:
            return [], 0, 0
        # Guarded by state: on SQLite this statement takes the write lock, and a case that
        # changed since the SELECT is not matched.
        claimed = list(session.scalars(
            update(Disposal)
            .where(among(session, Disposal.id, candidates), Disposal.state == "approved")
            .values(state="executing", lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=lease_s),
                    attempts=Disposal.attempts + 1, next_attempt_at=None, updated_at=now)
            .returning(Disposal.id)
        ))
        cases = list(session.scalars(
            select(Disposal).where(among(session, Disposal.id, claimed)).order_by(Disposal.id)
            .execution_options(populate_existing=True)
        ))
        ok, held, withdrawn = _recheck(ctx, session, cases, now)
        until = (now + dt.timedelta(seconds=lease_s)).isoformat()
        # One INSERT for the batch's events (an ORM object each was a fifth of execution).
        record_events(session, kind="DisposalClaimed", actor=ACTOR, entity="disposal", at=now,
                      policy_version=ctx.policy.version,
                      reason="approved, due and not held: execution started",
                      events=[(case.id, {"owner": owner, "attempt": case.attempts,
                                         "lease_until": until}) for case in ok])
        return [c.id for c in ok], held, withdrawn


def _owned(session: Session, disposal_id: int, owner: str) -> Disposal | None:
    case = session.get(Disposal, disposal_id, with_for_update=True, populate_existing=True)
    if case is None or case.state != "executing" or case.lease_owner != owner:
        return None
    return case


#: ``_execution_row``'s "not read yet": read the row by the case's id.
_UNREAD: Any = object()


def _execution_row(session: Session, case: Disposal, now: dt.datetime,
                   known: DisposalExecution | None = _UNREAD) -> DisposalExecution:
    """The case's execution row (``known``: as already read, None for none), created if it
    has none, with its action and time brought up to date."""
    row = known if known is not _UNREAD else session.scalar(
        select(DisposalExecution).where(DisposalExecution.disposal_id == case.id))
    if row is None:
        row = DisposalExecution(disposal_id=case.id, action=case.action, updated_at=now)
        session.add(row)
    row.action, row.updated_at = case.action, now
    return row


def _lock_batch(session: Session, ids: list[int]) -> dict[int, Disposal]:
    """The batch's cases, locked (PostgreSQL; SQLite's writer lock does it there)."""
    return {c.id: c for c in session.scalars(
        select(Disposal).where(among(session, Disposal.id, ids)).order_by(Disposal.id)
        .with_for_update().execution_options(populate_existing=True))}


def _start_batch(ctx: Context, ids: list[int], *, owner: str,
                 lease_s: int) -> tuple[list[_Work], dict[int, str]]:
    """One transaction for a claimed batch, just before its connector work: the cases this
    owner still holds are checked once more (holds, then the due date), their leases
    renewed, and what the connector calls need is read. Returns the work that may go ahead
    and, by id, what happened to the rest (``held``, ``withdrawn``, ``lease_lost``)."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        locked = _lock_batch(session, ids)
        owned = [c for c in locked.values() if c.state == "executing" and c.lease_owner == owner]
        mine = {c.id for c in owned}
        early = {i: "lease_lost" for i in ids if i not in mine}
        ok, _held, _withdrawn = _recheck(ctx, session, owned, now)
        going = {c.id for c in ok}
        for case in owned:
            if case.id not in going:
                early[case.id] = case.state  # held or withdrawn, by _recheck
        if not ok:
            return [], early
        until = now + dt.timedelta(seconds=lease_s)
        for case in ok:
            case.lease_until = until
        records = {rid: (system, locator, key, controller) for rid, system, locator, key,
                   controller in session.execute(
                       select(Record.id, Record.system, Record.locator, Record.record_key,
                              Controller.code)
                       .join(Controller, Controller.id == Record.controller_id)
                       .where(among(session, Record.id, [c.record_id for c in ok])))}
        packages = {did: (name, sha, sent) for did, name, sha, sent in session.execute(
            select(DisposalExecution.disposal_id, DisposalExecution.package_name,
                   DisposalExecution.package_sha256, DisposalExecution.action_sent_at)
            .where(among(session, DisposalExecution.disposal_id, list(going))))}
        works = []
        for case in ok:
            system, locator, key, controller = records[case.record_id]
            name, sha, sent = packages.get(case.id, (None, None, None))
            works.append(_Work(id=case.id, action=case.action, system=system, locator=locator,
                               record_key=key, controller=controller, attempts=case.attempts,
                               package_name=name, package_sha256=sha,
                               sent=sent is not None or name is not None))
        return works, early


def _renew(ctx: Context, ids: list[int], owner: str, lease_s: int) -> set[int]:
    """Extend the leases this owner still holds on ``ids``; return those ids. A batch whose
    connector work outlasts a lease keeps its cases this way, so another instance cannot
    reap and repeat them while this one is still working through them."""
    if not ids:
        return set()
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        return set(session.scalars(
            update(Disposal)
            .where(among(session, Disposal.id, ids), Disposal.state == "executing",
                   Disposal.lease_owner == owner)
            .values(lease_until=now + dt.timedelta(seconds=lease_s))
            .returning(Disposal.id)
        ))


def _mark_sent(ctx: Context, ids: list[int], owner: str, lease_s: int) -> set[int]:
    """Record, for the cases this owner still holds, that their action is about to be sent,
    their data having just been seen present (and renew their leases). Returns those ids.
    Committed before the holding system is touched, so that a retry after a crash knows that
    data now absent is this service's own work, and a first attempt knows it is not."""
    if not ids:
        return set()
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        marked = set()
        # The batch's execution rows in one read: one query per case (each flushing the row
        # added before it) was most of a batch's time.
        rows = {r.disposal_id: r for r in session.scalars(
            select(DisposalExecution).where(among(session, DisposalExecution.disposal_id, ids)))}
        for case in _lock_batch(session, ids).values():
            if case.state != "executing" or case.lease_owner != owner:
                continue
            # Every row the batch has was read above: a case without one has none.
            row = _execution_row(session, case, now, rows.get(case.id))
            row.action_sent_at = row.action_sent_at or now
            case.lease_until = now + dt.timedelta(seconds=lease_s)
            marked.add(case.id)
        return marked


def _precheck(ctx: Context, work: _Work, batch: list[int], owner: str,
              lease_s: int) -> _Lost | _Stopped | None:
    """Just before one case's own connector call (a return, a manual task: actions carried
    out one at a time, each perhaps slow): check once more that this owner holds it and that
    no hold covers it and its basis stands, and renew the leases of the batch's cases
    (``batch``: those done wait for the finish transaction, the rest for their turn). None
    when it may go ahead."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        case = _owned(session, work.id, owner)
        if case is None:
            return _LOST
        ok, _held, _withdrawn = _recheck(ctx, session, [case], now)
        if not ok:
            return _Stopped(state=case.state)
        session.execute(
            update(Disposal)
            .where(among(session, Disposal.id, batch), Disposal.state == "executing",
                   Disposal.lease_owner == owner)
            .values(lease_until=now + dt.timedelta(seconds=lease_s))
        )
    return None


def _checkpoint_package(ctx: Context, work: _Work, owner: str, connector: Connector,
                        name: str, sha256: str) -> None:
    """Record a delivered return package before its source is deleted."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        case = _owned(session, work.id, owner)
        if case is None:
            raise _LeaseLost()
        row = _execution_row(session, case, now)
        row.system, row.connector, row.connector_kind = work.system, connector.name, connector.kind
        row.package_name, row.package_sha256, row.package_delivered_at = name, sha256, now
        record_event(session, kind="DisposalPackageDelivered", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason="return package delivered to the originating controller",
                     data={"controller": work.controller, "package": name, "sha256": sha256})


def _finish_batch(ctx: Context, works: list[_Work], outcomes: dict[int, _Outcome], owner: str,
                  *, max_attempts: int, backoff_s: float,
                  max_backoff_s: float) -> dict[int, str]:
    """One transaction recording a batch's outcomes, guarded by the lease owner: each case
    gets its own state change, execution row and audit event, as it would alone. Returns
    each case's outcome by name (``lease_lost`` where this owner no longer holds it)."""
    now = ctx.clock.now()
    ids = [w.id for w in works]
    results: dict[int, str] = {}
    executed: dict[str, list[tuple[object, dict[str, Any]]]] = {}
    with ctx.sessions.begin() as session:
        cases = _lock_batch(session, ids)
        rows = {r.disposal_id: r for r in session.scalars(
            select(DisposalExecution).where(among(session, DisposalExecution.disposal_id, ids)))}
        for work in works:
            case = cases.get(work.id)
            outcome = outcomes.get(work.id)
            if isinstance(outcome, _Stopped):
                results[work.id] = outcome.state
            elif case is None or case.state != "executing" or case.lease_owner != owner \
                    or isinstance(outcome, _Lost):
                results[work.id] = "lease_lost"
            elif outcome is None:
                _release_case(ctx, session, case, now)
                results[work.id] = "released"
            elif isinstance(outcome, _Failed):
                results[work.id] = _record_error(
                    ctx, session, case, work, outcome, now, max_attempts=max_attempts,
                    backoff_s=backoff_s, max_backoff_s=max_backoff_s)
            else:
                row = rows.get(work.id)
                if row is None:
                    row = DisposalExecution(disposal_id=case.id, action=case.action,
                                            updated_at=now)
                    session.add(row)
                results[work.id] = _record_done(ctx, session, case, row, work, outcome, now,
                                                executed)
        # The batch's DisposalExecuted events in one INSERT per reason, as record_event
        # would write them one by one.
        for reason, events in executed.items():
            record_events(session, kind="DisposalExecuted", actor=ACTOR, entity="disposal",
                          at=now, policy_version=ctx.policy.version, reason=reason,
                          events=events)
    return results


def _record_done(ctx: Context, session: Session, case: Disposal, row: DisposalExecution,
                 work: _Work, outcome: _Done | _Task | _NotFound, now: dt.datetime,
                 executed: dict[str, list[tuple[object, dict[str, Any]]]] | None = None) -> str:
    """``executed`` (or ``pending_confirmation``, or ``not_found``: a finding that also
    waits in ``pending_confirmation``) with its execution row and audit event."""
    connector = outcome.connector
    row.action, row.updated_at = case.action, now
    row.system = work.system
    row.connector = connector.name if connector else None
    row.connector_kind = connector.kind if connector else None
    case.lease_owner = case.lease_until = None
    case.last_error, case.updated_at = None, now
    if isinstance(outcome, _Task):
        case.state = "pending_confirmation"
        row.task_created_at = now
        record_event(session, kind="DisposalTaskCreated", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason=outcome.why,
                     data={"system": work.system, "connector": row.connector,
                           "action": work.action})
        return "pending_confirmation"
    if isinstance(outcome, _NotFound):
        case.state = "pending_confirmation"
        case.reason = f"not found in {work.system} on the first attempt"
        row.not_found_at = row.task_created_at = now
        record_event(session, kind="DisposalNotFound", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason=case.reason,
                     data={"system": work.system, "connector": row.connector,
                           "action": work.action, "attempt": work.attempts,
                           "checked": f"{row.connector}.exists() was false before anything "
                                      "was sent"})
        return "not_found"
    case.state = "executed"
    row.method, row.verification, row.executed_at = outcome.method, outcome.verification, now
    row.outcome = OUTCOMES.get(work.action, work.action)
    row.remaining = [c.as_json() for c in remaining_copies(outcome.connector, ctx.clock.today())]
    data: dict[str, Any] = {
        "system": work.system, "connector": connector.name if connector else None,
        "connector_kind": connector.kind if connector else None, "action": work.action,
        "method": outcome.method, "verification": outcome.verification,
        "attempts": work.attempts, "outcome": row.outcome, "remaining": row.remaining,
    }
    if outcome.package is not None:
        data["package"], data["package_sha256"] = outcome.package
    reason = f"{work.action} carried out and verified"
    if executed is not None:
        executed.setdefault(reason, []).append((case.id, data))
    else:
        record_event(session, kind="DisposalExecuted", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason=reason, data=data)
    return "executed"


def _record_error(ctx: Context, session: Session, case: Disposal, work: _Work,
                  failure: _Failed, now: dt.datetime, *, max_attempts: int, backoff_s: float,
                  max_backoff_s: float) -> str:
    """After a connector error: ``retry_scheduled`` (back to ``approved`` with an
    exponential backoff) or ``failed``."""
    error = failure.error
    case.lease_owner = case.lease_until = None
    case.last_error, case.updated_at = error[:2000], now
    if not failure.permanent and case.attempts < max_attempts:
        delay = min(max_backoff_s, backoff_s * 2 ** max(case.attempts - 1, 0))
        case.state = "approved"
        case.next_attempt_at = now + dt.timedelta(seconds=delay)
        record_event(session, kind="DisposalRetryScheduled", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, reason=error,
                     policy_version=ctx.policy.version,
                     data={"attempt": case.attempts, "next_attempt_at":
                           case.next_attempt_at.isoformat(), "delay_s": delay})
        return "retry_scheduled"
    case.state = "failed"
    why = error if failure.permanent else f"gave up after {case.attempts} attempts: {error}"
    case.last_error = why[:2000]
    record_event(session, kind="DisposalFailed", actor=ACTOR, entity="disposal",
                 entity_id=case.id, at=now, reason=why, policy_version=ctx.policy.version,
                 data={"attempts": case.attempts, "action": work.action,
                       "system": work.system, "permanent": failure.permanent})
    return "failed"


def _release_case(ctx: Context, session: Session, case: Disposal, now: dt.datetime) -> None:
    """Give back a claimed case whose connector work was not started (``stop`` was set)."""
    case.state, case.lease_owner, case.lease_until = "approved", None, None
    case.attempts, case.updated_at = case.attempts - 1, now
    record_event(session, kind="DisposalReleased", actor=ACTOR, entity="disposal",
                 entity_id=case.id, at=now, policy_version=ctx.policy.version,
                 reason="the executor stopped before starting it")


def _release(ctx: Context, ids: list[int], owner: str) -> list[int]:
    """Give back claimed cases that were not started (``stop`` was set); returns their ids."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        released = []
        for case in _lock_batch(session, ids).values():
            if case.state == "executing" and case.lease_owner == owner:
                _release_case(ctx, session, case, now)
                released.append(case.id)
    return released


# --- the connector call ---------------------------------------------------------------------

def _verify_gone(connector: Connector, work: _Work) -> str:
    if connector.exists(work.ref()):
        raise TransientConnectorError(
            f"{connector.name}: the record is still there after delete (verification failed)"
        )
    return f"{connector.name}.exists() is false after the {work.action}"


def _perform(ctx: Context, connectors: ConnectorRegistry, work: _Work, owner: str,
             lease_s: int) -> _Done | _Task | _NotFound:
    """Carry out the case's action through its connector (outside any registry transaction)."""
    if work.action == "review":
        return _Task(connector=None, why="the rule's action is review: a person must decide "
                     "and carry it out")
    if work.action not in ACTIONS:
        raise PermanentConnectorError(f"unknown action {work.action!r}")
    connector = connectors.for_system(work.system)
    if getattr(connector, "requires_confirmation", False):
        return _Task(connector=connector, why=f"{connector.name} is a manual connector: a "
                     "person destroys the record and an IG officer confirms it with evidence")
    if not work.locator:
        raise PermanentConnectorError("the record has no locator: the connector cannot find it")
    ref = work.ref()
    if not work.sent:
        if not connector.exists(ref):
            return _NotFound(connector=connector, system=work.system)
        if work.id not in _mark_sent(ctx, [work.id], owner, lease_s):
            raise _LeaseLost()
    if work.action == "delete":
        method = connector.delete(ref, work.key)
        return _Done(connector=connector, method=method,
                     verification=_verify_gone(connector, work))
    if work.action == "return":
        returner = connectors.returner()
        if work.package_name is None or work.package_sha256 is None:
            package = returner.deliver(ref, work.key)
            _checkpoint_package(ctx, work, owner, connector, package.name, package.sha256)
            name, sha, fmt = package.name, package.sha256, package.format
        else:
            # A package was recorded by an earlier attempt: the return was made.
            name, sha, fmt = work.package_name, work.package_sha256, work.package_name.rsplit(".")[-1]
        deleted = connector.delete(ref, work.key)
        return _Done(connector=connector, package=(name, sha),
                     method=(f"returned to controller {work.controller} as an encrypted {fmt} "
                             f"package {name} (sha256 {sha}) via {returner.name}; then "
                             f"{deleted}"),
                     verification=_verify_gone(connector, work))
    if work.action == "anonymise":
        if not isinstance(connector, Anonymiser):
            raise PermanentConnectorError(
                f"connector {connector.name} (kind {connector.kind}) cannot anonymise: "
                "configure one that can, or change the rule's action"
            )
        return _Done(connector=connector, method=connector.anonymise(ref, work.key),
                     verification=f"{connector.name} reported the record anonymised")
    if not isinstance(connector, Transferrer):
        raise PermanentConnectorError(
            f"connector {connector.name} (kind {connector.kind}) cannot transfer to an archive: "
            "configure one that can, or change the rule's action"
        )
    method = connector.transfer(ref, work.key)
    return _Done(connector=connector, method=method, verification=_verify_gone(connector, work))


def _failure(exc: Exception) -> _Failed:
    """A connector call's error as recorded. An unexpected one's message may quote data, so
    only its type is kept; it is retried, within the attempts allowed, like a transient
    error."""
    if isinstance(exc, ConnectorError):
        return _Failed(error=str(exc), permanent=isinstance(exc, PermanentConnectorError),
                       error_type=type(exc).__name__)
    return _Failed(error=f"unexpected error in the connector call: {type(exc).__name__}",
                   permanent=False, error_type=type(exc).__name__)


def _delete_group(ctx: Context, connector: Connector, group: list[_Work], owner: str,
                  lease_s: int, stop: threading.Event | None) -> dict[int, _Outcome]:
    """Delete a group of cases through one connector (``delete_many``, or ``delete`` one at a
    time), then verify with ``exists_many`` (or ``exists``) that the data is gone.

    On a case's first attempt its data must be there: it is looked for first (one
    ``exists_many``), a case whose data is not found is a finding (:class:`_NotFound`), never
    a deletion, and the cases found are marked sent (:func:`_mark_sent`) before the delete. A
    case marked sent on an earlier attempt is deleted straight away: its data already absent
    is this service's own delete. A case left out because ``stop`` was set is absent from the
    result."""
    outcomes: dict[int, _Outcome] = {}
    fresh = [w for w in group if not w.sent]
    seen = exists_each(connector, [(w.ref(), w.key) for w in fresh])
    present = []
    for work in fresh:
        there = seen[work.key]
        if isinstance(there, Exception):
            outcomes[work.id] = _failure(there)
        elif not there:
            outcomes[work.id] = _NotFound(connector=connector, system=work.system)
        else:
            present.append(work)
    marked = _mark_sent(ctx, [w.id for w in present], owner, lease_s)
    outcomes.update({w.id: _LOST for w in present if w.id not in marked})
    going = [w for w in group if w.sent or w.id in marked]
    deleted = delete_each(connector, [(w.ref(), w.key) for w in going],
                          stop=stop.is_set if stop is not None else None)
    done: list[_Work] = []
    for work in going:
        result = deleted.get(work.key)
        if isinstance(result, Exception):
            outcomes[work.id] = _failure(result)
        elif result is not None:
            done.append(work)
    still = exists_each(connector, [(w.ref(), w.key) for w in done])
    for work in done:
        there = still[work.key]
        if isinstance(there, Exception):
            outcomes[work.id] = _failure(there)
        elif there:
            outcomes[work.id] = _Failed(
                error=(f"{connector.name}: the record is still there after delete "
                       "(verification failed)"), permanent=False,
                error_type="TransientConnectorError")
        else:
            outcomes[work.id] = _Done(
                connector=connector, method=str(deleted[work.key]),
                verification=f"{connector.name}.exists() is false after the {work.action}")
    return outcomes


def _perform_batch(ctx: Context, connectors: ConnectorRegistry, works: list[_Work],
                   owner: str, stop: threading.Event | None,
                   lease_s: int) -> dict[int, _Outcome]:
    """The connector work of a batch, outside any registry transaction. Deletes are grouped
    by connector and sent together; every other action (return, anonymise, transfer, and
    the tasks of manual connectors and of ``review``) is carried out one case at a time,
    each after its own check (:func:`_precheck`: the lease, holds, the due date), which also
    renews the leases of the cases still waiting. Before each group of deletes the leases
    are renewed once a third of ``lease_s`` has passed since they last were. A case not
    started because ``stop`` was set is absent from the result; a case whose error is its
    own never stops the others."""
    outcomes: dict[int, _Outcome] = {}
    renewed = ctx.clock.now()  # the start transaction has just set every lease
    groups: dict[str, tuple[Connector, list[_Work]]] = {}
    single: list[_Work] = []
    for work in works:
        if work.action == "delete" and work.locator:
            try:
                connector = connectors.for_system(work.system)
            except ConnectorError as exc:
                outcomes[work.id] = _failure(exc)
                continue
            if not getattr(connector, "requires_confirmation", False):
                groups.setdefault(connector.name, (connector, []))[1].append(work)
                continue
        single.append(work)
    for connector, group in groups.values():
        if stop is not None and stop.is_set():
            return outcomes
        if (ctx.clock.now() - renewed).total_seconds() >= lease_s / 3:
            kept = _renew(ctx, [w.id for w in works], owner, lease_s)
            renewed = ctx.clock.now()
            outcomes.update({w.id: _LOST for w in works if w.id not in kept})
        group = [w for w in group if not isinstance(outcomes.get(w.id), _Lost)]
        if group:
            outcomes.update(_delete_group(ctx, connector, group, owner, lease_s, stop))
    batch = [w.id for w in works]
    for work in single:
        if stop is not None and stop.is_set():
            return outcomes
        if isinstance(outcomes.get(work.id), _Lost):
            continue
        checked = _precheck(ctx, work, batch, owner, lease_s)
        if checked is not None:
            outcomes[work.id] = checked
            continue
        try:
            outcomes[work.id] = _perform(ctx, connectors, work, owner, lease_s)
        except _LeaseLost:
            outcomes[work.id] = _LOST
        except Exception as exc:
            outcomes[work.id] = _failure(exc)
    return outcomes


# --- the entry points -----------------------------------------------------------------------

def _execute_batch(ctx: Context, connectors: ConnectorRegistry, ids: list[int], *, owner: str,
                   lease_s: int, stop: threading.Event | None, max_attempts: int,
                   backoff_s: float, max_backoff_s: float) -> dict[int, str]:
    """A claimed batch from start to finish: the start transaction, the connector work, the
    finish transaction. Returns each case's outcome by name.

    Crash safety, per batch. Every case of the batch stays ``executing`` under this owner's
    lease from the claim until the finish transaction commits, and that transaction records
    every case's outcome or none. A kill (or a lost registry connection) anywhere before it
    commits, in particular after the holding system's own transaction deleted the batch's
    data and before the registry's commit, leaves the whole batch ``executing``: nothing is
    recorded as executed that was not, and no case is half-recorded. When the lease expires
    :func:`reap_leases` returns each case to ``approved``; the next claim checks holds and
    the due date again and calls the connector again with the same idempotency key, which
    finds the data already absent (success), verifies with ``exists`` that it is gone, and
    records ``DisposalExecuted`` once. A batch the holding system committed only in part
    (``delete`` one record at a time) is the same: each case is retried on its own. The
    finish transaction is guarded by the lease owner, case by case: a case reaped and
    claimed by another instance meanwhile is ``lease_lost`` here and recorded only there.
    """
    if stop is not None and stop.is_set():
        released = set(_release(ctx, ids, owner))
        return {i: "released" if i in released else "lease_lost" for i in ids}
    works, results = _start_batch(ctx, ids, owner=owner, lease_s=lease_s)
    if not works:
        return results
    outcomes = _perform_batch(ctx, connectors, works, owner, stop, lease_s)
    finished = _finish_batch(ctx, works, outcomes, owner, max_attempts=max_attempts,
                             backoff_s=backoff_s, max_backoff_s=max_backoff_s)
    for work in works:
        result = finished[work.id]
        fields = {"disposal_id": work.id, "action": work.action, "system": work.system,
                  "attempt": work.attempts}
        outcome = outcomes.get(work.id)
        if isinstance(outcome, _Failed) and result != "lease_lost":
            _log_error(result, fields, outcome.error_type, outcome.error)
        elif result == "lease_lost":
            log.warning("disposal_lease_lost", **fields)
        elif isinstance(outcome, _Stopped):
            log.info("disposal_stopped_before_action", state=result, **fields)
        elif result == "pending_confirmation":
            log.info("disposal_task_created", **fields)
        elif result == "not_found":
            log.warning("disposal_not_found", **fields)
        elif result == "executed" and isinstance(outcome, _Done):
            log.info("disposal_executed", connector=outcome.connector.name, **fields)
    results.update(finished)
    return results


def _log_error(result: str, fields: dict[str, Any], error_type: str, error: str) -> None:
    if result == "failed":
        log.error("disposal_failed", error_type=error_type, error=error, **fields)
    else:
        log.warning("disposal_retry_scheduled", error_type=error_type, error=error, **fields)


def execute_due(ctx: Context, connectors: ConnectorRegistry, *, owner: str, batch_size: int,
                lease_s: int, stop: threading.Event | None = None,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS, backoff_s: float = DEFAULT_BACKOFF_S,
                max_backoff_s: float = DEFAULT_MAX_BACKOFF_S) -> ExecuteResult:
    """Claim approved cases in batches and carry them out until none is ready.

    ``owner`` names this worker in leases (unique per process: host, pid). ``lease_s`` must be
    longer than the slowest single connector call (a group's ``delete_many``, one return):
    leases are renewed between calls. When ``stop`` is set, the connector work
    in hand is finished (a connector's ``delete_many`` call, or one case's call), the rest of
    the batch is released, and the call returns. A case whose attempt failed transiently is
    not tried again in the same call (its backoff runs first).
    """
    if batch_size < 1 or lease_s < 1:
        raise ValueError("batch_size and lease_s must be at least 1")
    counts: dict[str, int] = dict.fromkeys(
        ("claimed", "executed", "pending_confirmation", "not_found", "retry_scheduled", "failed",
         "held", "withdrawn", "released", "lease_lost"), 0)
    retried: set[int] = set()
    stopped = False
    # Cases whose cooling-off has ended become approved (or held) before anything is claimed.
    end_cooling(ctx)
    while True:
        if stop is not None and stop.is_set():
            stopped = True
            break
        ids, held, withdrawn = _claim(ctx, owner=owner, batch_size=batch_size, lease_s=lease_s,
                                      exclude=retried)
        counts["claimed"] += len(ids) + held + withdrawn
        counts["held"] += held
        counts["withdrawn"] += withdrawn
        if ids:
            results = _execute_batch(ctx, connectors, ids, owner=owner, lease_s=lease_s,
                                     stop=stop, max_attempts=max_attempts, backoff_s=backoff_s,
                                     max_backoff_s=max_backoff_s)
            for disposal_id, result in results.items():
                counts[result] += 1
                if result == "retry_scheduled":
                    retried.add(disposal_id)
            if counts["released"]:
                stopped = True
                break
        if len(ids) + held + withdrawn < batch_size:
            break
    return ExecuteResult(stopped=stopped, waiting_for_notice=waiting_for_notice(ctx), **counts)


def reap_leases(ctx: Context, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> int:
    """Cases left ``executing`` by a worker that died (lease expired) go back to ``approved``
    to be tried again (safe: every step is idempotent), or to ``failed`` once they have had
    ``max_attempts``. Returns how many were reaped."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        cases = list(session.scalars(
            select(Disposal)
            .where(Disposal.state == "executing", Disposal.lease_until < now)
            .order_by(Disposal.id).with_for_update(skip_locked=True)
        ))
        for case in cases:
            previous = case.lease_owner
            case.lease_owner = case.lease_until = None
            case.updated_at = now
            if case.attempts >= max_attempts:
                case.state = "failed"
                case.last_error = (f"gave up after {case.attempts} attempts: the worker's "
                                   "lease expired each time")
                record_event(session, kind="DisposalFailed", actor=ACTOR, entity="disposal",
                             entity_id=case.id, at=now, reason=case.last_error,
                             policy_version=ctx.policy.version,
                             data={"attempts": case.attempts, "previous_owner": previous})
                log.error("disposal_failed", disposal_id=case.id, error=case.last_error)
                continue
            case.state, case.next_attempt_at = "approved", None
            record_event(session, kind="DisposalLeaseExpired", actor=ACTOR, entity="disposal",
                         entity_id=case.id, at=now, policy_version=ctx.policy.version,
                         reason="the worker's lease expired before it finished: to be retried",
                         data={"previous_owner": previous, "attempts": case.attempts})
            log.warning("disposal_lease_reaped", disposal_id=case.id, previous_owner=previous)
        return len(cases)


def count_by_state(ctx: Context) -> dict[str, int]:
    """Cases per state (for metrics and status lines)."""
    with ctx.sessions() as session:
        return {s: int(n) for s, n in session.execute(
            select(Disposal.state, func.count()).group_by(Disposal.state))}
