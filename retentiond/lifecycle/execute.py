"""Execution: ``approved -> executing -> executed``, safely (DESIGN.md sections 3.6, 4 and 5).

One disposal goes through four short registry transactions and, between them, connector
calls made outside any transaction:

1. **claim** (a batch): ``approved`` cases whose backoff has passed are locked (PostgreSQL:
   ``FOR UPDATE SKIP LOCKED``, so instances share one queue; SQLite: one instance, and the
   guarded ``UPDATE`` takes the write lock), moved to ``executing`` with a lease (owner,
   until) and, **in the same transaction**, checked again: a case whose record an active hold
   covers goes to ``held``; one whose record is no longer due, or whose due date or action
   changed, is ``withdrawn``.
2. **start** (each case, just before its connector call): the lease is renewed if this owner
   still holds it, and the hold and due-date checks are made once more.
3. the **connector** is called with the idempotency key ``disposal-{id}``: a delete is
   verified with ``exists`` (false) before it counts; a return delivers its encrypted
   package and records the package's SHA-256 (a transaction of its own) before the source is
   deleted; a manual connector, and the action ``review``, open a task for a person instead.
4. **finish**, guarded by the lease owner: ``executed`` with a ``DisposalExecuted`` audit
   event; or ``pending_confirmation``; or, after a transient error, back to ``approved``
   with an exponential backoff; or, after a permanent error or too many attempts, ``failed``.

A crash anywhere leaves a case ``executing`` with a lease that expires; :func:`reap_leases`
returns it to ``approved``, and the retry is safe because every step is idempotent: deleting
what is already gone is success, and a return whose package was recorded is not made again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.connectors import (
    Anonymiser,
    Connector,
    ConnectorError,
    ConnectorRef,
    ConnectorRegistry,
    PermanentConnectorError,
    Transferrer,
    TransientConnectorError,
)
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.sql import hold_covers_record
from retentiond.logs import get_logger
from retentiond.registry.models import Approval, Controller, Disposal, DisposalExecution, Record

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
    retry_scheduled: int = 0
    failed: int = 0
    held: int = 0
    withdrawn: int = 0
    #: Claimed but given back untouched because ``stop`` was set.
    released: int = 0
    #: The lease was lost (reaped, and perhaps claimed by another instance) mid-way.
    lease_lost: int = 0
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
class _Task:
    connector: Connector | None
    why: str


class _LeaseLost(Exception):
    """This owner no longer holds the case's lease."""


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
        .where(Disposal.id.in_(list(ids)), hold_covers_record(today))
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
    records = {r.id: r for r in session.scalars(
        select(Record).where(Record.id.in_([c.record_id for c in cases])))}
    ok: list[Disposal] = []
    held = withdrawn = 0
    for case in cases:
        if case.id in held_ids:
            _stop_case(ctx, session, case, state="held", kind="DisposalHeld", now=now,
                       reason="an active hold covers the record (checked at execution)")
            held += 1
        elif (why := _stale_reason(case, records[case.record_id], today)) is not None:
            _stop_case(ctx, session, case, state="withdrawn", kind="DisposalWithdrawn",
                       now=now, reason=why)
            withdrawn += 1
        else:
            ok.append(case)
    return ok, held, withdrawn


# --- transactions ---------------------------------------------------------------------------

def _claim(ctx: Context, *, owner: str, batch_size: int, lease_s: int,
           exclude: set[int]) -> tuple[list[int], int, int]:
    """Claim up to ``batch_size`` approved cases: (claimed ids, held, withdrawn)."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        query = (
            select(Disposal.id)
            .where(Disposal.state == "approved",
                   or_(Disposal.next_attempt_at.is_(None), Disposal.next_attempt_at <= now))
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
            .where(Disposal.id.in_(candidates), Disposal.state == "approved")
            .values(state="executing", lease_owner=owner,
                    lease_until=now + dt.timedelta(seconds=lease_s),
                    attempts=Disposal.attempts + 1, next_attempt_at=None, updated_at=now)
            .returning(Disposal.id)
        ))
        cases = list(session.scalars(
            select(Disposal).where(Disposal.id.in_(claimed)).order_by(Disposal.id)
            .execution_options(populate_existing=True)
        ))
        ok, held, withdrawn = _recheck(ctx, session, cases, now)
        for case in ok:
            record_event(session, kind="DisposalClaimed", actor=ACTOR, entity="disposal",
                         entity_id=case.id, at=now, policy_version=ctx.policy.version,
                         reason="approved, due and not held: execution started",
                         data={"owner": owner, "attempt": case.attempts,
                               "lease_until": (now + dt.timedelta(seconds=lease_s)).isoformat()})
        return [c.id for c in ok], held, withdrawn


def _owned(session: Session, disposal_id: int, owner: str) -> Disposal | None:
    case = session.get(Disposal, disposal_id, with_for_update=True, populate_existing=True)
    if case is None or case.state != "executing" or case.lease_owner != owner:
        return None
    return case


def _execution_row(session: Session, case: Disposal, now: dt.datetime) -> DisposalExecution:
    row = session.scalar(select(DisposalExecution)
                         .where(DisposalExecution.disposal_id == case.id))
    if row is None:
        row = DisposalExecution(disposal_id=case.id, action=case.action, updated_at=now)
        session.add(row)
    row.action, row.updated_at = case.action, now
    return row


def _start(ctx: Context, disposal_id: int, *, owner: str,
           lease_s: int) -> tuple[_Work | None, str]:
    """Renew the lease and check once more: (work, "") or (None, what happened instead)."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        case = _owned(session, disposal_id, owner)
        if case is None:
            return None, "lease_lost"
        ok, held, _withdrawn = _recheck(ctx, session, [case], now)
        if not ok:
            return None, "held" if held else "withdrawn"
        case.lease_until = now + dt.timedelta(seconds=lease_s)
        record, controller = session.execute(
            select(Record, Controller.code).join(Controller, Controller.id == Record.controller_id)
            .where(Record.id == case.record_id)
        ).one()
        row = session.scalar(select(DisposalExecution)
                             .where(DisposalExecution.disposal_id == case.id))
        return _Work(
            id=case.id, action=case.action, system=record.system, locator=record.locator,
            record_key=record.record_key, controller=controller, attempts=case.attempts,
            package_name=row.package_name if row else None,
            package_sha256=row.package_sha256 if row else None,
        ), ""


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


def _finish(ctx: Context, work: _Work, owner: str, outcome: _Done | _Task) -> bool:
    """Record the outcome under the lease; False if the lease was lost."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        case = _owned(session, work.id, owner)
        if case is None:
            return False
        row = _execution_row(session, case, now)
        connector = outcome.connector
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
            return True
        case.state = "executed"
        row.method, row.verification, row.executed_at = outcome.method, outcome.verification, now
        data: dict[str, Any] = {
            "system": work.system, "connector": connector.name if connector else None,
            "connector_kind": connector.kind if connector else None, "action": work.action,
            "method": outcome.method, "verification": outcome.verification,
            "attempts": work.attempts,
        }
        if outcome.package is not None:
            data["package"], data["package_sha256"] = outcome.package
        record_event(session, kind="DisposalExecuted", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason=f"{work.action} carried out and verified", data=data)
        return True


def _finish_error(ctx: Context, work: _Work, owner: str, error: str, *, permanent: bool,
                  max_attempts: int, backoff_s: float, max_backoff_s: float) -> str:
    """After a connector error: ``retry_scheduled``, ``failed`` or ``lease_lost``."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        case = _owned(session, work.id, owner)
        if case is None:
            return "lease_lost"
        case.lease_owner = case.lease_until = None
        case.last_error, case.updated_at = error[:2000], now
        if not permanent and case.attempts < max_attempts:
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
        why = error if permanent else f"gave up after {case.attempts} attempts: {error}"
        case.last_error = why[:2000]
        record_event(session, kind="DisposalFailed", actor=ACTOR, entity="disposal",
                     entity_id=case.id, at=now, reason=why, policy_version=ctx.policy.version,
                     data={"attempts": case.attempts, "action": work.action,
                           "system": work.system, "permanent": permanent})
        return "failed"


def _release(ctx: Context, ids: list[int], owner: str) -> int:
    """Give back claimed cases that were not started (``stop`` was set)."""
    if not ids:
        return 0
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        released = list(session.scalars(
            update(Disposal)
            .where(Disposal.id.in_(ids), Disposal.state == "executing",
                   Disposal.lease_owner == owner)
            .values(state="approved", lease_owner=None, lease_until=None,
                    attempts=Disposal.attempts - 1, updated_at=now)
            .returning(Disposal.id)
        ))
        for i in released:
            record_event(session, kind="DisposalReleased", actor=ACTOR, entity="disposal",
                         entity_id=i, at=now, policy_version=ctx.policy.version,
                         reason="the executor stopped before starting it")
    return len(released)


# --- the connector call ---------------------------------------------------------------------

def _verify_gone(connector: Connector, work: _Work) -> str:
    if connector.exists(work.ref()):
        raise TransientConnectorError(
            f"{connector.name}: the record is still there after delete (verification failed)"
        )
    return f"{connector.name}.exists() is false after the {work.action}"


def _perform(ctx: Context, connectors: ConnectorRegistry, work: _Work,
             owner: str) -> _Done | _Task:
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


# --- the entry points -----------------------------------------------------------------------

def _execute_one(ctx: Context, connectors: ConnectorRegistry, disposal_id: int, *, owner: str,
                 lease_s: int, max_attempts: int, backoff_s: float,
                 max_backoff_s: float) -> str:
    """One case from start to finish; returns its outcome's name."""
    work, happened = _start(ctx, disposal_id, owner=owner, lease_s=lease_s)
    if work is None:
        return happened
    fields = {"disposal_id": work.id, "action": work.action, "system": work.system,
              "attempt": work.attempts}
    try:
        outcome = _perform(ctx, connectors, work, owner)
    except _LeaseLost:
        log.warning("disposal_lease_lost", **fields)
        return "lease_lost"
    except ConnectorError as exc:
        permanent = isinstance(exc, PermanentConnectorError)
        result = _finish_error(ctx, work, owner, str(exc), permanent=permanent,
                               max_attempts=max_attempts, backoff_s=backoff_s,
                               max_backoff_s=max_backoff_s)
        _log_error(result, fields, type(exc).__name__, str(exc))
        return result
    except Exception as exc:
        # Unexpected: its message may quote data, so only its type is kept. Retried, within
        # the attempts allowed, like a transient error.
        error = f"unexpected error in the connector call: {type(exc).__name__}"
        result = _finish_error(ctx, work, owner, error, permanent=False,
                               max_attempts=max_attempts, backoff_s=backoff_s,
                               max_backoff_s=max_backoff_s)
        _log_error(result, fields, type(exc).__name__, error)
        return result
    if not _finish(ctx, work, owner, outcome):
        log.warning("disposal_lease_lost", **fields)
        return "lease_lost"
    if isinstance(outcome, _Task):
        log.info("disposal_task_created", **fields)
        return "pending_confirmation"
    log.info("disposal_executed", connector=outcome.connector.name, **fields)
    return "executed"


def _log_error(result: str, fields: dict[str, Any], error_type: str, error: str) -> None:
    if result == "failed":
        log.error("disposal_failed", error_type=error_type, error=error, **fields)
    elif result == "retry_scheduled":
        log.warning("disposal_retry_scheduled", error_type=error_type, error=error, **fields)
    else:
        log.warning("disposal_lease_lost", error_type=error_type, **fields)


def execute_due(ctx: Context, connectors: ConnectorRegistry, *, owner: str, batch_size: int,
                lease_s: int, stop: threading.Event | None = None,
                max_attempts: int = DEFAULT_MAX_ATTEMPTS, backoff_s: float = DEFAULT_BACKOFF_S,
                max_backoff_s: float = DEFAULT_MAX_BACKOFF_S) -> ExecuteResult:
    """Claim approved cases in batches and carry them out until none is ready.

    ``owner`` names this worker in leases (unique per process: host, pid). ``lease_s`` must be
    longer than the slowest connector call. When ``stop`` is set, the case in hand is
    finished, the rest of the batch is released, and the call returns. A case whose attempt
    failed transiently is not tried again in the same call (its backoff runs first).
    """
    if batch_size < 1 or lease_s < 1:
        raise ValueError("batch_size and lease_s must be at least 1")
    counts: dict[str, int] = dict.fromkeys(
        ("claimed", "executed", "pending_confirmation", "retry_scheduled", "failed", "held",
         "withdrawn", "released", "lease_lost"), 0)
    retried: set[int] = set()
    stopped = False
    while not stopped:
        if stop is not None and stop.is_set():
            stopped = True
            break
        ids, held, withdrawn = _claim(ctx, owner=owner, batch_size=batch_size, lease_s=lease_s,
                                      exclude=retried)
        counts["claimed"] += len(ids) + held + withdrawn
        counts["held"] += held
        counts["withdrawn"] += withdrawn
        for i, disposal_id in enumerate(ids):
            if stop is not None and stop.is_set():
                counts["released"] += _release(ctx, ids[i:], owner)
                stopped = True
                break
            result = _execute_one(ctx, connectors, disposal_id, owner=owner, lease_s=lease_s,
                                  max_attempts=max_attempts, backoff_s=backoff_s,
                                  max_backoff_s=max_backoff_s)
            counts[result] += 1
            if result == "retry_scheduled":
                retried.add(disposal_id)
        if len(ids) + held + withdrawn < batch_size:
            break
    return ExecuteResult(stopped=stopped, **counts)


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
