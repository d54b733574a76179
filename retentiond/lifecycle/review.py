"""Review: approve, defer, reject, raise an exception, comment, and list disposal cases.

Each call acts on one or more cases in one transaction: if any case is refused, none is
changed. Doing the same thing twice has the effect of doing it once.

The semantics every route shares (the web pages, the API, the command line, and the bulk
review by filter, which does the same set-based):

- **Scope.** A case is acted on (or seen) only if it is in the actor's review scope
  (``lifecycle/scopes.py``: unscoped when neither they nor any of their groups has a scope
  row; else the union of those rows). An id out of scope is refused as "not in your review
  scope", as if it were not there.
- **Staged case** (``stage`` not null), ``pending_review``, ``stage = k``: the actor may
  approve if they have the ``approve`` permission (checked by the route), are a member of
  ``stage_group``, the case is in their scope, they hold no live approval of the case (any
  stage: one person cannot approve two stages), it is due, and not held. Approving inserts
  ``Approval(stage=k)``; if k is the last position the case completes (``stage`` stays k: a
  staged case's ``stage`` is never null), else ``stage = k+1`` and ``stage_group`` is that
  stage's group (the state stays ``pending_review``). Voiding a case's approvals (a hold, an
  exception, a cancelled cooling-off, a return to review) puts it back at stage 0.
- **Count case** (``stage`` null): as before stages existed: it completes when the distinct
  live approvers reach ``approvals_required``.
- **Completing**: ``cooling_off_days > 0`` -> ``cooling_off`` with ``cooling_until = now +
  cooling_off_days`` days; else ``approved``. Execution claims only ``approved`` cases; before
  each claim ``lifecycle/cooling.py`` moves ``cooling_off`` cases whose ``cooling_until`` has
  passed to ``approved`` (guarded, audited ``CoolingOffEnded``), or to ``held`` if a hold
  covers them then. An IG officer may cancel a cooling-off (``cancel_cooling``): back to
  ``pending_review`` at stage 0, approvals voided. A hold placed during cooling-off moves
  the case to ``held`` like an approved one.
- **Exception** (``raise_exception``): any reviewer (``approve`` or ``review`` permission)
  with the case in scope moves a ``pending_review`` (or ``cooling_off``) case to
  ``exception``, its live approvals voided, with a reason. The IG officer then keeps the
  record (``reject``), corrects its facts (the record's edit or re-import, then recompute
  withdraws the case if its decision changed), or sends it on (``resume``: back to
  ``pending_review`` at stage 0).
- **Comment** (``comment``): words on a case's history, changing nothing else.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.presence import findings
from retentiond.lifecycle.scopes import groups_of, in_scope, scope_clause, scope_rows
from retentiond.lifecycle.sql import hold_covers_record, move_cases, restart_stages
from retentiond.lifecycle.stages import StageView, stages_of
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    DISPOSAL_STATES,
    Approval,
    AuditEvent,
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
    #: A staged case: the position of the stage it waits for while pending review (the last
    #: one once it completed); None for a count case.
    stage: int | None = None
    #: A staged case's stages, in order (empty: a count case).
    stages: tuple[StageView, ...] = ()
    cooling_off_days: int = 0
    #: While ``cooling_off``: when execution may claim it.
    cooling_until: dt.datetime | None = None

    @property
    def waiting_stage(self) -> StageView | None:
        """The stage a staged case pending review waits for."""
        if self.stage is None or self.state != "pending_review":
            return None
        return next((s for s in self.stages if s.position == self.stage), None)

    def stage_words(self) -> str | None:
        """"Stage 2 of 3: ig (group ig)" for a staged case pending review; None otherwise."""
        stage = self.waiting_stage
        if stage is None:
            return None
        return (f"Stage {stage.position + 1} of {len(self.stages)}: {stage.name} "
                f"(group {stage.group})")

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
            "stage": self.stage,
            "stage_group": self.waiting_stage.group if self.waiting_stage else None,
            "stages": [{"position": st.position, "name": st.name, "group": st.group}
                       for st in self.stages],
            "cooling_off_days": self.cooling_off_days,
            "cooling_until": self.cooling_until.isoformat() if self.cooling_until else None,
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


def require_scope(session: Session, actor: str, cases: list[Disposal]) -> None:
    """Refuse any case outside ``actor``'s review scope, as if it were not there (an id out
    of scope says nothing of the record behind it)."""
    rows = scope_rows(session, actor)
    if not rows:
        return
    where = {d: (code, category) for d, code, category in session.execute(
        select(Disposal.id, Controller.code, Record.category)
        .join(Record, Record.id == Disposal.record_id)
        .join(Controller, Controller.id == Record.controller_id)
        .where(Disposal.id.in_([c.id for c in cases])))}
    out = [c.id for c in cases if not in_scope(rows, *where[c.id])]
    if out:
        raise LifecycleError(
            f"no disposal {', '.join(map(str, out))} in your review scope: you may review "
            "only the controllers and categories your scope names")


def _load_scoped(session: Session, ids: list[int], actor: str) -> list[Disposal]:
    cases = _load(session, ids)
    require_scope(session, actor, cases)
    return cases


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
    """Record the actor's approval (the module's docstring gives the rules).

    A count case becomes ``approved`` (or ``cooling_off``) once enough different people have
    approved it (the rule's ``approvals_required``); a staged case moves to its next stage,
    and completes at its last.

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
        cases = _load_scoped(session, ids, ctx.actor)
        absent = {rid: f for rid, f in findings(session, [c.record_id for c in cases]).items()
                  if not f.found}
        covered = hold_covers_record(session, today)
        groups = groups_of(session, ctx.actor)
        all_stages = stages_of(session, [c.id for c in cases if c.stage is not None])
        for case in cases:
            approvers = _approvers(session, case.id)
            if case.state in ("approved", "cooling_off") and ctx.actor in approvers:
                continue
            if case.state != "pending_review":
                raise LifecycleError(
                    f"disposal {case.id} is {case.state.replace('_', ' ')}: only a case "
                    "pending review can be approved")
            if _is_held(session, case.record_id, covered):
                raise LifecycleError(f"disposal {case.id}: the record is under a hold")
            if case.due_on > today:
                raise LifecycleError(f"disposal {case.id} is not due until {case.due_on}")
            stages = all_stages.get(case.id, [])
            stage = case.stage
            if ctx.actor in approvers:
                raise _already(case, ctx.actor, len(stages))
            if stage is not None:
                if stage >= len(stages):
                    raise LifecycleError(f"disposal {case.id}: its stages are missing; an IG "
                                         "officer must look at it")
                waiting = stages[stage]
                if waiting.group not in groups:
                    raise LifecycleError(
                        f"disposal {case.id} waits for stage {stage + 1} of {len(stages)} "
                        f"({waiting.name}), approved by a member of group {waiting.group}: "
                        f"you are not in that group")
            finding = absent.get(case.record_id)
            if finding is not None and not acknowledge_not_found:
                raise LifecycleError(
                    f"disposal {case.id}: its data was not found in {finding.system} when last "
                    f"checked ({finding.checked_at.date().isoformat()}): check the record's "
                    "locator first, or acknowledge that it is not there to approve it anyway")
            session.add(Approval(disposal_id=case.id, approver=ctx.actor, reason=reason,
                                 approved_at=now, stage=stage))
            try:
                session.flush()
            except IntegrityError as exc:
                if not repeated_approval(exc):
                    raise
                raise _already(case, ctx.actor, len(stages)) from None
            approvers.append(ctx.actor)
            data: dict[str, Any] = {"approvals": len(approvers),
                                    "approvals_required": case.approvals_required,
                                    **ctx.sod_data()}
            if stage is not None:
                complete = stage + 1 >= len(stages)
                data |= {"stage": stage, "stage_name": stages[stage].name,
                         "stage_group": stages[stage].group, "stages": len(stages)}
                del data["approvals_required"]
            else:
                complete = len(approvers) >= case.approvals_required
            values: dict[str, Any] = {"updated_at": now}
            to = "pending_review"
            if complete:
                to = "cooling_off" if case.cooling_off_days > 0 else "approved"
                if to == "cooling_off":
                    values["cooling_until"] = now + dt.timedelta(days=case.cooling_off_days)
                    data["cooling_until"] = values["cooling_until"].isoformat()
            elif stage is not None:
                values |= {"stage": stage + 1, "stage_group": stages[stage + 1].group}
            if not _move_guarded(session, case, to, stage, values):
                raise _changed(session, case, "approved")
            if finding is not None:
                data["acknowledged_not_found"] = finding.system
            record_event(
                session, kind="DisposalApproved" if complete else "DisposalApprovalRecorded",
                actor=ctx.actor, entity="disposal", entity_id=case.id, at=now, reason=reason,
                policy_version=ctx.policy.version, data=data,
            )
        session.flush()
        return _view_ids(session, cases)


def _move_guarded(session: Session, case: Disposal, to: str, stage: int | None,
                  values: dict[str, Any]) -> bool:
    """Move one case pending review on, only if it still waits for ``stage`` (a staged case
    another approval moved on meanwhile is not matched)."""
    moved = session.scalars(
        update(Disposal)
        .where(Disposal.id == case.id, Disposal.state == "pending_review",
               Disposal.stage.is_(None) if stage is None else Disposal.stage == stage)
        .values(state=to, **values).returning(Disposal.id)
        .execution_options(synchronize_session="fetch")).all()
    return bool(moved)


def repeated_approval(exc: IntegrityError) -> bool:
    """Whether the database refused a second live approval by one person of one case (the
    index ``uq_approvals_live``: PostgreSQL names it, SQLite names its columns)."""
    text = str(exc.orig)
    return "uq_approvals_live" in text or "approvals.disposal_id, approvals.approver" in text


def _already(case: Disposal, actor: str, stages: int = 0) -> LifecycleError:
    if stages:
        return LifecycleError(
            f"disposal {case.id}: {actor} has already approved it at an earlier stage; each of "
            f"its {stages} stages needs a different person")
    return LifecycleError(
        f"disposal {case.id}: {actor} has already approved it; its rule needs "
        f"{case.approvals_required} different approvers"
    )


#: The cases review may close (defer or reject).
CLOSABLE = ("pending_review", "approved", "held", "exception", "cooling_off")


def defer(ctx: Context, ids: list[int], *, reason: str, until: dt.date) -> list[DisposalView]:
    """Keep the records for now: the cases close as ``deferred`` and the records are not
    queued again before ``until``."""
    reason = _require_reason(reason)
    now, today = ctx.clock.now(), ctx.clock.today()
    if until <= today:
        raise LifecycleError(f"--until {until.isoformat()} must be after today ({today.isoformat()})")
    with write_transaction(ctx.sessions) as session:
        cases = _load_scoped(session, ids, ctx.actor)
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
        cases = _load_scoped(session, ids, ctx.actor)
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
    staged = stages_of(session, [row[0].id for row in rows if row[0].stage is not None])
    return [
        DisposalView(
            id=case.id, record_id=key, category=category, controller=controller,
            state=case.state, due_on=case.due_on, action=case.action, rule=case.rule_id,
            policy_version=case.policy_version, approvals_required=case.approvals_required,
            approved_by=tuple(approvers.get(case.id, ())), reason=case.reason,
            updated_at=case.updated_at, not_found_in=absent.get(case.record_id),
            last_error=case.last_error, attempts=case.attempts, stage=case.stage,
            stages=tuple(staged.get(case.id, ())), cooling_off_days=case.cooling_off_days,
            cooling_until=case.cooling_until,
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
        scope = scope_clause(session, ctx.actor)
        if scope is not None:
            query = query.where(scope)
        if limit is not None:
            query = query.limit(limit)
        return _views(session, query)


def count_disposals(ctx: Context, *, state: str | None = None, after_id: int = 0) -> int:
    """How many cases ``list_disposals`` would give without a limit."""
    with ctx.sessions() as session:
        query = select(func.count()).select_from(Disposal).where(Disposal.id > after_id)
        if state is not None:
            query = query.where(Disposal.state == state)
        scope = scope_clause(session, ctx.actor)
        if scope is not None:
            query = (query.join(Record, Record.id == Disposal.record_id)
                     .join(Controller, Controller.id == Record.controller_id).where(scope))
        return int(session.scalar(query) or 0)


#: States a reviewer may raise an exception from.
EXCEPTABLE = ("pending_review", "cooling_off")


def _void(session: Session, ids: list[int], now: dt.datetime) -> None:
    session.execute(update(Approval)
                    .where(Approval.disposal_id.in_(ids), Approval.voided_at.is_(None))
                    .values(voided_at=now))


def raise_exception(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """A reviewer takes cases out of review and back to the IG officer, with a reason: the
    cases go to ``exception`` and their live approvals are voided (the route checks that the
    actor may approve or review). Raising it again on a case already in exception is a
    no-op."""
    reason = _require_reason(reason)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        cases = _load_scoped(session, ids, ctx.actor)
        for case in cases:
            if case.state == "exception":
                continue
            if case.state not in EXCEPTABLE:
                raise LifecycleError(
                    f"disposal {case.id} is {case.state.replace('_', ' ')}: an exception can "
                    "be raised only on a case pending review or cooling off")
            was = case.state
            if not move_cases(session, [case.id], expected=EXCEPTABLE, state="exception",
                              reason=reason, updated_at=now, cooling_until=None):
                raise _changed(session, case, "sent back as an exception")
            _void(session, [case.id], now)
            restart_stages(session, [case.id])
            record_event(session, kind="DisposalExceptionRaised", actor=ctx.actor,
                         entity="disposal", entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version, data={"was": was, **ctx.sod_data()})
        session.flush()
        return _view_ids(session, cases)


def resume(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """The IG officer sends cases in ``exception`` on: back to ``pending_review`` (a staged
    case at its first stage), or to ``held`` if a hold covers the record now."""
    reason = _require_reason(reason)
    now, today = ctx.clock.now(), ctx.clock.today()
    with write_transaction(ctx.sessions) as session:
        cases = _load_scoped(session, ids, ctx.actor)
        covered = hold_covers_record(session, today)
        for case in cases:
            if case.state != "exception":
                if case.state == "pending_review" and _last_kind(session, case) == RESUMED:
                    continue
                raise LifecycleError(
                    f"disposal {case.id} is {case.state.replace('_', ' ')}: only a case "
                    "raised as an exception can be sent on to review")
            held = _is_held(session, case.record_id, covered)
            to = "held" if held else "pending_review"
            if not move_cases(session, [case.id], expected=("exception",), state=to,
                              reason=reason, updated_at=now):
                raise _changed(session, case, "sent on to review")
            restart_stages(session, [case.id])
            record_event(session, kind=RESUMED, actor=ctx.actor, entity="disposal",
                         entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version, data={"now": to, **ctx.sod_data()})
        session.flush()
        return _view_ids(session, cases)


RESUMED = "DisposalResumed"
COOLING_CANCELLED = "CoolingOffCancelled"


def _last_kind(session: Session, case: Disposal) -> str | None:
    return session.scalar(
        select(AuditEvent.kind).where(AuditEvent.entity == "disposal",
                                      AuditEvent.entity_id == str(case.id))
        .order_by(AuditEvent.id.desc()).limit(1))


def cancel_cooling(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """The IG officer cancels a cooling-off: the case goes back to ``pending_review`` (a
    staged case at its first stage) and its approvals are voided. Guarded against the job
    that ends cooling-off: whichever commits first wins, and a case already approved for
    execution is refused (say so; it can still be held)."""
    reason = _require_reason(reason)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        cases = _load_scoped(session, ids, ctx.actor)
        for case in cases:
            if case.state != "cooling_off":
                if case.state == "pending_review" and \
                        _last_kind(session, case) == COOLING_CANCELLED:
                    continue
                raise LifecycleError(
                    f"disposal {case.id} is {case.state.replace('_', ' ')}: only a case "
                    "cooling off can have its cooling-off cancelled")
            until = case.cooling_until
            if not move_cases(session, [case.id], expected=("cooling_off",),
                              state="pending_review", reason=reason, updated_at=now,
                              cooling_until=None):
                raise _changed(session, case, "cancelled")
            _void(session, [case.id], now)
            restart_stages(session, [case.id])
            record_event(session, kind=COOLING_CANCELLED, actor=ctx.actor, entity="disposal",
                         entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version,
                         data={"cooling_until": until.isoformat() if until else None,
                               **ctx.sod_data()})
        session.flush()
        return _view_ids(session, cases)


def comment(ctx: Context, disposal_id: int, *, text: str) -> DisposalView:
    """Words on a case's history (audited ``DisposalCommented``), changing nothing else."""
    text = required_text(text, "a comment needs some words")
    if len(text) > 2000:
        raise LifecycleError("a comment is at most 2,000 characters")
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        cases = _load_scoped(session, [disposal_id], ctx.actor)
        record_event(session, kind="DisposalCommented", actor=ctx.actor, entity="disposal",
                     entity_id=disposal_id, at=now, reason=text,
                     policy_version=ctx.policy.version, data={"state": cases[0].state, **ctx.sod_data()})
        session.flush()
        return _view_ids(session, cases)[0]
