"""Review: approve, defer, reject, and list disposal cases.

Each call acts on one or more cases in one transaction: if any case is refused, none is
changed. Doing the same thing twice has the effect of doing it once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.presence import findings
from retentiond.lifecycle.sql import hold_covers_record, move_cases
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    DISPOSAL_STATES,
    Approval,
    Controller,
    Disposal,
    Record,
)

#: The approver recorded when a rule allows approval without a person: evaluate writes it,
#: recompute voids it when the rule no longer allows it.
AUTO_APPROVER = "retentiond:auto-approval"


@dataclass(frozen=True, kw_only=True)
class DisposalView:
    """A disposal case as commands and pages show it."""

    id: int
    record_id: str
    category: str
    controller: str
    state: str
    due_on: dt.date
    action: str
    rule: str
    policy_version: str
    approvals_required: int
    approved_by: tuple[str, ...]
    reason: str | None
    updated_at: dt.datetime
    #: The holding system that did not find the record's data when last asked, if any.
    not_found_in: str | None = None
    #: Why the last attempt to carry it out failed (shown while the case is ``failed``).
    last_error: str | None = None
    attempts: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "record_id": self.record_id, "category": self.category,
            "controller": self.controller, "state": self.state,
            "due_on": self.due_on.isoformat(), "action": self.action, "rule": self.rule,
            "policy_version": self.policy_version,
            "approvals_required": self.approvals_required,
            "approved_by": list(self.approved_by), "reason": self.reason,
            "updated_at": self.updated_at.isoformat(), "not_found_in": self.not_found_in,
            "last_error": self.last_error, "attempts": self.attempts,
        }


def _approvers(session: Session, disposal_id: int) -> list[str]:
    """The different people whose approval of the case stands, in the order they gave it."""
    return list(dict.fromkeys(session.scalars(
        select(Approval.approver)
        .where(Approval.disposal_id == disposal_id, Approval.voided_at.is_(None))
        .order_by(Approval.id)
    )))


def _changed(session: Session, case: Disposal, doing: str) -> LifecycleError:
    """The refusal of a transition that lost a race: the case is no longer in the state the
    checks saw."""
    now_state = session.scalar(select(Disposal.state).where(Disposal.id == case.id))
    return LifecycleError(
        f"disposal {case.id} changed while it was being {doing} (it is now {now_state}): "
        "nothing was changed; look at it again")


def _load(session: Session, ids: list[int]) -> list[Disposal]:
    if not ids:
        raise LifecycleError("name at least one disposal id")
    found = {
        d.id: d for d in session.scalars(
            select(Disposal).where(Disposal.id.in_(ids)).with_for_update()
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise LifecycleError(f"no disposal {', '.join(map(str, missing))}")
    return [found[i] for i in dict.fromkeys(ids)]


def _is_held(session: Session, record_id: int, covered: ColumnElement[bool]) -> bool:
    """``covered``: ``hold_covers_record(session, as_of)``, built once per operation (it reads
    the active filter holds)."""
    return bool(session.scalar(
        select(func.count()).select_from(Record).where(Record.id == record_id, covered)
    ))


def _require_reason(reason: str) -> str:
    return required_text(reason, "a reason is required")


def approve(ctx: Context, ids: list[int], *, reason: str,
            acknowledge_not_found: bool = False) -> list[DisposalView]:
    """Record the actor's approval; a case becomes ``approved`` once enough different
    people have approved it (the rule's ``approvals_required``).

    One person counts once however many sessions, tokens or processes they approve from: the
    checks run under the write lock (SQLite) or the case's row lock (PostgreSQL), and the
    database holds at most one live approval per case and person (``uq_approvals_live``).

    A case whose data its holding system did not find when last asked
    (``lifecycle.presence``) is refused unless ``acknowledge_not_found``; the acknowledgement
    is recorded with the approval.
    """
    reason = _require_reason(reason)
    now, today = ctx.clock.now(), ctx.clock.today()
    with write_transaction(ctx.sessions) as session:
        cases = _load(session, ids)
        absent = {rid: f for rid, f in findings(session, [c.record_id for c in cases]).items()
                  if not f.found}
        covered = hold_covers_record(session, today)
        for case in cases:
            approvers = _approvers(session, case.id)
            if case.state == "approved" and ctx.actor in approvers:
                continue
            if case.state != "pending_review":
                raise LifecycleError(
                    f"disposal {case.id} is {case.state}: only a case pending review can be approved"
                )
            if _is_held(session, case.record_id, covered):
                raise LifecycleError(f"disposal {case.id}: the record is under a hold")
            if case.due_on > today:
                raise LifecycleError(f"disposal {case.id} is not due until {case.due_on}")
            if ctx.actor in approvers:
                raise _already(case, ctx.actor)
            finding = absent.get(case.record_id)
            if finding is not None and not acknowledge_not_found:
                raise LifecycleError(
                    f"disposal {case.id}: its data was not found in {finding.system} when last "
                    f"checked ({finding.checked_at.date().isoformat()}): check the record's "
                    "locator first, or acknowledge that it is not there to approve it anyway")
            session.add(Approval(disposal_id=case.id, approver=ctx.actor, reason=reason,
                                 approved_at=now))
            try:
                session.flush()
            except IntegrityError as exc:
                if not repeated_approval(exc):
                    raise
                raise _already(case, ctx.actor) from None
            approvers.append(ctx.actor)
            complete = len(approvers) >= case.approvals_required
            if not move_cases(session, [case.id], expected=("pending_review",),
                              state="approved" if complete else "pending_review",
                              updated_at=now):
                raise _changed(session, case, "approved")
            data: dict[str, Any] = {"approvals": len(approvers),
                                    "approvals_required": case.approvals_required,
                                    **ctx.sod_data()}
            if finding is not None:
                data["acknowledged_not_found"] = finding.system
            record_event(
                session, kind="DisposalApproved" if complete else "DisposalApprovalRecorded",
                actor=ctx.actor, entity="disposal", entity_id=case.id, at=now, reason=reason,
                policy_version=ctx.policy.version, data=data,
            )
        session.flush()
        return _view_ids(session, cases)


def repeated_approval(exc: IntegrityError) -> bool:
    """Whether the database refused a second live approval by one person of one case (the
    index ``uq_approvals_live``: PostgreSQL names it, SQLite names its columns)."""
    text = str(exc.orig)
    return "uq_approvals_live" in text or "approvals.disposal_id, approvals.approver" in text


def _already(case: Disposal, actor: str) -> LifecycleError:
    return LifecycleError(
        f"disposal {case.id}: {actor} has already approved it; its rule needs "
        f"{case.approvals_required} different approvers"
    )


#: The cases review may close (defer or reject).
CLOSABLE = ("pending_review", "approved", "held")


def defer(ctx: Context, ids: list[int], *, reason: str, until: dt.date) -> list[DisposalView]:
    """Keep the records for now: the cases close as ``deferred`` and the records are not
    queued again before ``until``."""
    reason = _require_reason(reason)
    now, today = ctx.clock.now(), ctx.clock.today()
    if until <= today:
        raise LifecycleError(f"--until {until.isoformat()} must be after today ({today.isoformat()})")
    with write_transaction(ctx.sessions) as session:
        cases = _load(session, ids)
        for case in cases:
            record = session.get_one(Record, case.record_id)
            if case.state == "deferred" and record.deferred_until == until:
                continue
            if case.state not in CLOSABLE:
                raise LifecycleError(f"disposal {case.id} is {case.state}: it cannot be deferred")
            if not move_cases(session, [case.id], expected=CLOSABLE, state="deferred",
                              reason=reason, updated_at=now):
                raise _changed(session, case, "deferred")
            record.deferred_until, record.updated_at = until, now
            record_event(session, kind="DisposalDeferred", actor=ctx.actor, entity="disposal",
                         entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version, data={"until": until.isoformat()})
        session.flush()
        return _view_ids(session, cases)


def reject(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """Refuse disposal under the present decision: the record is retained and is not queued
    again until its due date changes (its facts, category or the policy change)."""
    reason = _require_reason(reason)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        cases = _load(session, ids)
        for case in cases:
            if case.state == "rejected":
                continue
            if case.state not in CLOSABLE:
                raise LifecycleError(f"disposal {case.id} is {case.state}: it cannot be rejected")
            record = session.get_one(Record, case.record_id)
            if not move_cases(session, [case.id], expected=CLOSABLE, state="rejected",
                              reason=reason, updated_at=now):
                raise _changed(session, case, "rejected")
            record.rejected_due_on, record.updated_at = case.due_on, now
            record_event(session, kind="DisposalRejected", actor=ctx.actor, entity="disposal",
                         entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version)
        session.flush()
        return _view_ids(session, cases)


def _views(session: Session, query: Any) -> list[DisposalView]:
    """Cases from a ``select(Disposal)`` query, with their record and approvers, in two
    queries whatever the number of cases."""
    rows = session.execute(
        query.add_columns(Record.record_key, Record.category, Controller.code)
        .join(Record, Record.id == Disposal.record_id)
        .join(Controller, Controller.id == Record.controller_id)
    ).all()
    approvers: dict[int, list[str]] = {}
    ids = [row[0].id for row in rows]
    for start in range(0, len(ids), 5000):
        for disposal_id, approver in session.execute(
            select(Approval.disposal_id, Approval.approver)
            .where(Approval.disposal_id.in_(ids[start:start + 5000]), Approval.voided_at.is_(None))
            .order_by(Approval.id)
        ):
            people = approvers.setdefault(disposal_id, [])
            if approver not in people:
                people.append(approver)
    absent = {rid: f.system for rid, f in findings(
        session, [row[0].record_id for row in rows]).items() if not f.found}
    return [
        DisposalView(
            id=case.id, record_id=key, category=category, controller=controller,
            state=case.state, due_on=case.due_on, action=case.action, rule=case.rule_id,
            policy_version=case.policy_version, approvals_required=case.approvals_required,
            approved_by=tuple(approvers.get(case.id, ())), reason=case.reason,
            updated_at=case.updated_at, not_found_in=absent.get(case.record_id),
            last_error=case.last_error, attempts=case.attempts,
        )
        for case, key, category, controller in rows
    ]


def _view_ids(session: Session, cases: list[Disposal]) -> list[DisposalView]:
    by_id = {v.id: v for v in _views(session, select(Disposal).where(
        Disposal.id.in_([c.id for c in cases])))}
    return [by_id[c.id] for c in cases]


def list_disposals(ctx: Context, *, state: str | None = None, limit: int | None = None,
                   after_id: int = 0) -> list[DisposalView]:
    """Cases in id order (keyset: pass the last id seen as ``after_id``)."""
    if state is not None and state not in DISPOSAL_STATES:
        raise LifecycleError(f"unknown state {state!r} (one of: {', '.join(DISPOSAL_STATES)})")
    with ctx.sessions() as session:
        query = select(Disposal).where(Disposal.id > after_id).order_by(Disposal.id)
        if state is not None:
            query = query.where(Disposal.state == state)
        if limit is not None:
            query = query.limit(limit)
        return _views(session, query)


def count_disposals(ctx: Context, *, state: str | None = None, after_id: int = 0) -> int:
    """How many cases ``list_disposals`` would give without a limit."""
    with ctx.sessions() as session:
        query = select(func.count()).select_from(Disposal).where(Disposal.id > after_id)
        if state is not None:
            query = query.where(Disposal.state == state)
        return int(session.scalar(query) or 0)
