"""Bulk review: approve, defer, reject or raise exceptions on every case a queue filter
selects, in one action.

The selection is the review queue's: the filter's criteria (controller, category, rule, action,
due dates, case state; ``gone_at_source``), within the actor's scope (a case outside it is not
part of the selection, as it is not in their queue). Of the cases selected, those the actor may
not act on are **left out and counted by reason** (held, not due, already approved by them,
waiting for a stage whose group they are not in, data not found in its holding system), never
silently; the rest are acted on under exactly the rules of one-by-one review
(``lifecycle/review.py``).

``expected`` is the number of cases the person was told would be acted on before they
confirmed (:func:`preview_matching`). If the selection no longer gives that number (a hold was
placed, another reviewer acted, a case was queued), the whole action is refused and nothing is
changed: the person looks again.

Set-based: every step is one SQL statement per chunk of ``CHUNK`` cases (an ``INSERT ...
SELECT`` of approvals, a guarded ``UPDATE ... WHERE state = expected`` of the cases, an
``INSERT ... SELECT`` of one audit event per case), never a round trip per case. **All in one
transaction**, under ``write_transaction`` (SQLite: the write lock from the first statement;
PostgreSQL: the selected cases are locked ``FOR UPDATE`` first, so a hold or another reviewer
acting meanwhile waits for this action, or this one for them, and the guarded updates always
find what was counted). The audit events are sealed into the hash chain when it commits, as
any other transaction's are (``registry/chain.py``). One more event, written first, records
the action itself: the filter, the count, what was left out and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    any_,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.filters import Criteria, case_conditions, check_known
from retentiond.lifecycle.presence import locator_digest
from retentiond.lifecycle.review import CLOSABLE, EXCEPTABLE, repeated_approval
from retentiond.lifecycle.scopes import groups_of, scope_clause
from retentiond.lifecycle.sql import no_hold_covers_record, restart_stages
from retentiond.logs import get_logger
from retentiond.registry.chain import note_inserted
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    Approval,
    AuditEvent,
    Controller,
    Disposal,
    DisposalStage,
    Record,
    RecordPresence,
)

log = get_logger("retentiond.bulk_review")

#: Cases per statement: an ``IN`` list of this many ids is well within SQLite's limit; on
#: PostgreSQL the ids go as one array parameter (``= ANY``), so a statement can take more.
CHUNK = 5000
CHUNK_PG = 25000
VERBS = ("approve", "defer", "reject", "exception")

#: Why a selected case is left out, in the order the checks are made (a case counts under the
#: first that applies), with the words the pages and commands use after a count ("12 ...").
LEFT_OUT_WORDS: dict[str, tuple[str, str]] = {
    # code: (one, many)
    "held": ("is under a hold", "are under a hold"),
    "not_pending": ("is not pending review", "are not pending review"),
    "not_closable": ("cannot be deferred or rejected in its state",
                     "cannot be deferred or rejected in their state"),
    "not_exceptable": ("is neither pending review nor cooling off",
                       "are neither pending review nor cooling off"),
    "not_due": ("is not due yet", "are not due yet"),
    "already_approved": ("you have already approved", "you have already approved"),
    "other_stage": ("waits for a stage you are not in", "wait for a stage you are not in"),
    "stages_missing": ("has lost its stages: an IG officer must look at it",
                       "have lost their stages: an IG officer must look at them"),
    "not_found": ("has data its holding system did not find (acknowledge it to include it)",
                  "have data their holding system did not find (acknowledge it to include "
                  "them)"),
}


class SelectionChanged(LifecycleError):
    """The filter no longer selects the number of cases the person confirmed."""


@dataclass(frozen=True, kw_only=True)
class LeftOut:
    """Cases of the selection the actor may not act on, for one reason."""

    code: str
    count: int
    #: Cases in each state, for ``not_pending`` and ``not_closable`` (``{"approved": 3}``).
    states: dict[str, int] = field(default_factory=dict)

    @property
    def words(self) -> str:
        """``12 are under a hold``; ``3 you have already approved``."""
        one, many = LEFT_OUT_WORDS[self.code]
        text = f"{self.count:,} {one if self.count == 1 else many}"
        if self.states:
            text += " (" + ", ".join(f"{n:,} {s.replace('_', ' ')}"
                                     for s, n in sorted(self.states.items())) + ")"
        return text

    def as_json(self) -> dict[str, Any]:
        return {"reason": self.code, "count": self.count, "states": self.states,
                "words": self.words}


@dataclass(frozen=True, kw_only=True)
class BulkPreview:
    """What acting on a filter's selection would do now."""

    verb: str
    criteria: Criteria
    gone_at_source: bool
    #: Cases the filter selects (within the actor's scope).
    matching: int
    #: Of those, the cases the action would change: what ``expected`` must be.
    acting: int
    left_out: tuple[LeftOut, ...]

    @property
    def left_out_total(self) -> int:
        return sum(lo.count for lo in self.left_out)

    def left_out_words(self) -> str:
        """``12 are under a hold, 3 you have already approved`` (empty if none)."""
        return ", ".join(lo.words for lo in self.left_out)

    def as_json(self) -> dict[str, Any]:
        return {"verb": self.verb, "criteria": self.criteria.as_json(),
                "gone_at_source": self.gone_at_source, "matching": self.matching,
                "acting": self.acting, "left_out": [lo.as_json() for lo in self.left_out]}


@dataclass(frozen=True, kw_only=True)
class BulkResult:
    """What one bulk action did."""

    verb: str
    matching: int
    #: Cases acted on (equal to the ``expected`` the person confirmed).
    acted: int
    #: Of an approval: cases it completed (now approved, or cooling off), and cases that wait
    #: for another approver or the next stage.
    completed: int = 0
    waiting: int = 0
    left_out: tuple[LeftOut, ...] = ()
    #: The audit event that records the action itself (its filter and counts).
    event_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"verb": self.verb, "matching": self.matching, "acted": self.acted,
                "completed": self.completed, "waiting": self.waiting,
                "left_out": [lo.as_json() for lo in self.left_out], "event_id": self.event_id}


# --- the selection ------------------------------------------------------------------------

def _selected(session: Session, ctx: Context, criteria: Criteria,
              gone_at_source: bool) -> list[ColumnElement[bool]]:
    """The queue's conditions for ``criteria`` (on the case's own due date, rule and action,
    as the queue filters them), plus the actor's scope."""
    check_known(ctx, session, criteria)
    ident = None
    if criteria.controller:
        ident = session.scalar(select(Controller.id).where(Controller.code == criteria.controller))
    where = case_conditions(criteria, ident, gone_at_source=gone_at_source)
    scope = scope_clause(session, ctx.actor)
    if scope is not None:
        where.append(scope)
    return where


def _from() -> Any:
    return (select(Disposal.id).join(Record, Record.id == Disposal.record_id)
            .join(Controller, Controller.id == Record.controller_id))


def _not_found(session: Session, where: list[ColumnElement[bool]]) -> dict[int, str]:
    """Records of selected cases whose data was not found when last asked (a finding about
    another system or locator is no longer one): record id -> system. Few rows: only findings
    of ``found = false`` are read."""
    out: dict[int, str] = {}
    rows = session.execute(
        select(Record.id, Record.system, Record.locator, RecordPresence.system,
               RecordPresence.locator_sha256)
        .join(Disposal, Disposal.record_id == Record.id)
        .join(Controller, Controller.id == Record.controller_id)
        .join(RecordPresence, RecordPresence.record_id == Record.id)
        .where(RecordPresence.found == false(), *where))
    for rid, system, locator, p_system, p_digest in rows:
        if p_system == system and p_digest == locator_digest(system, locator):
            out[rid] = p_system
    return out


def _live_approval_by(actor: str) -> ColumnElement[bool]:
    return exists().where(Approval.disposal_id == Disposal.id, Approval.approver == actor,
                          Approval.voided_at.is_(None)).correlate(Disposal)


@dataclass(frozen=True, kw_only=True)
class _Checks:
    """The conditions of one verb: why a selected case is left out (first match wins), and
    the same as plain conditions for the cases acted on (anti-joins for the holds)."""

    reason: ColumnElement[Any]
    eligible: list[ColumnElement[bool]]
    not_found: dict[int, str]


def _checks(session: Session, ctx: Context, verb: str, where: list[ColumnElement[bool]],
            acknowledge_not_found: bool) -> _Checks:
    today = ctx.clock.today()
    if verb == "exception":
        return _Checks(
            reason=case((Disposal.state.not_in(EXCEPTABLE), literal("not_exceptable")),
                        else_=literal(None, String)),
            eligible=[Disposal.state.in_(EXCEPTABLE)], not_found={})
    if verb != "approve":
        return _Checks(
            reason=case((Disposal.state.not_in(CLOSABLE), literal("not_closable")),
                        else_=literal(None, String)),
            eligible=[Disposal.state.in_(CLOSABLE)], not_found={})
    absent = _not_found(session, where)
    blocked = [] if acknowledge_not_found else sorted(absent)
    whens: list[tuple[ColumnElement[bool], Any]] = [
        (Disposal.state == "held", literal("held")),
        (Disposal.state != "pending_review", literal("not_pending")),
        # One EXISTS per hold scope, each an index probe: one EXISTS over their OR would
        # make the database scan the holds for every selected case.
        (not_(no_hold_covers_record(session, today)), literal("held")),
        (Disposal.due_on > today, literal("not_due")),
        (_live_approval_by(ctx.actor), literal("already_approved")),
    ]
    eligible: list[ColumnElement[bool]] = [
        Disposal.state == "pending_review", no_hold_covers_record(session, today),
        Disposal.due_on <= today, not_(_live_approval_by(ctx.actor)),
    ]
    # A staged case waits for one group: the actor must be a member of it (the order of
    # stages is the case's own: ``stage`` is the one it waits for).
    groups = sorted(groups_of(session, ctx.actor))
    not_member = (Disposal.stage.is_not(None) & Disposal.stage_group.not_in(groups)) if groups \
        else Disposal.stage.is_not(None)
    whens.append((not_member, literal("other_stage")))
    eligible.append(not_(not_member))
    # As ``review.approve``: a staged case without the stage it waits for is not approved.
    lost = Disposal.stage.is_not(None) & ~exists().where(
        DisposalStage.disposal_id == Disposal.id,
        DisposalStage.position == Disposal.stage).correlate(Disposal)
    whens.append((lost, literal("stages_missing")))
    eligible.append(not_(lost))
    if blocked:
        whens.append((Disposal.record_id.in_(blocked), literal("not_found")))
        eligible.append(Disposal.record_id.not_in(blocked))
    return _Checks(reason=case(*whens, else_=literal(None, String)), eligible=eligible,
                   not_found=absent if acknowledge_not_found else {})


def _count(session: Session, where: list[ColumnElement[bool]],
           checks: _Checks) -> tuple[int, int, tuple[LeftOut, ...]]:
    """(matching, acting, left out by reason) in one grouped query."""
    # Grouped outside a subquery: PostgreSQL cannot match a GROUP BY expression holding
    # bound parameters with the same expression in the select list.
    each = (select(checks.reason.label("reason"), Disposal.state.label("state"))
            .select_from(Disposal).join(Record, Record.id == Disposal.record_id)
            .join(Controller, Controller.id == Record.controller_id)
            .where(*where).subquery())
    rows = session.execute(
        select(each.c.reason, each.c.state, func.count())
        .group_by(each.c.reason, each.c.state)).all()
    acting, matching = 0, 0
    by_code: dict[str, dict[str, int]] = {}
    for code, state, n in rows:
        matching += n
        if code is None:
            acting += n
        else:
            by_code.setdefault(code, {})[state] = by_code.get(code, {}).get(state, 0) + n
    left = tuple(
        LeftOut(code=code, count=sum(by_code[code].values()),
                states=dict(by_code[code]) if code in ("not_pending", "not_closable",
                                                      "not_exceptable") else {})
        for code in LEFT_OUT_WORDS if code in by_code)
    return matching, acting, left


def _check_verb(verb: str) -> None:
    if verb not in VERBS:
        raise LifecycleError(f"verb: {verb!r} is not one of {', '.join(VERBS)}")


def preview_matching(ctx: Context, verb: str, criteria: Criteria, *,
                     gone_at_source: bool = False,
                     acknowledge_not_found: bool = False) -> BulkPreview:
    """How many cases ``verb`` would act on now, and how many it would leave out and why.
    Changes nothing. Its ``acting`` is the ``expected`` of the action."""
    _check_verb(verb)
    with ctx.sessions() as session:
        where = _selected(session, ctx, criteria, gone_at_source)
        checks = _checks(session, ctx, verb, where, acknowledge_not_found)
        matching, acting, left = _count(session, where, checks)
    return BulkPreview(verb=verb, criteria=criteria, gone_at_source=gone_at_source,
                       matching=matching, acting=acting, left_out=left)


# --- acting -------------------------------------------------------------------------------

def _lock(session: Session, where: list[ColumnElement[bool]],
          checks: _Checks) -> tuple[list[int], list[int]]:
    """The ids of the cases to act on, locked (PostgreSQL: ``FOR UPDATE OF disposals``; on
    SQLite the write lock already holds everything), and the distinct positive
    ``cooling_off_days`` among them."""
    rows = session.execute(
        _from().add_columns(Disposal.cooling_off_days).where(*where, *checks.eligible)
        .order_by(Disposal.id).with_for_update(of=Disposal)).all()
    return [r[0] for r in rows], sorted({r[1] for r in rows if r[1] and r[1] > 0})


def _refuse_changed(verb: str, found: int, expected: int) -> SelectionChanged:
    doing = {"approve": "approved", "defer": "deferred", "reject": "rejected",
             "exception": "raised as exceptions"}[verb]
    return SelectionChanged(
        f"expected: the filter now selects {found:,} cases to be {doing}, not the "
        f"{expected:,} you confirmed (the queue changed meanwhile): nothing was changed; "
        "look at the selection again")


def _chunks(session: Session, ids: Sequence[int]) -> list[list[int]]:
    size = CHUNK_PG if _pg(session) else CHUNK
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _among(session: Session, column: Any, ids: list[int]) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: an ``IN`` list, or on PostgreSQL ``= ANY`` of one array
    parameter (one bind however many ids, and a plan the server does not re-make per size)."""
    condition: ColumnElement[bool] = (column == any_(literal(ids, ARRAY(BigInteger)))
                                      if _pg(session) else column.in_(ids))
    return condition


def _json(session: Session, pairs: dict[str, Any], *, strip_nulls: bool = False) -> Any:
    """A JSON object of ``pairs`` (SQL expressions) built in the database. ``strip_nulls``
    leaves out the keys whose value is null, as a one-by-one event leaves out what does not
    apply to its case (a count case's stage, a staged case's ``approvals_required``)."""
    args: list[Any] = []
    for key, value in pairs.items():
        args.extend([literal(key), value])
    if session.get_bind().dialect.name == "postgresql":
        built = func.json_build_object(*args)
        return func.json_strip_nulls(built) if strip_nulls else built
    if strip_nulls:
        # A merge patch (RFC 7396) onto {} drops the members whose value is null.
        return func.json_patch(literal("{}"), func.json_object(*args))
    return func.json(func.json_object(*args))


def _audit_cases(session: Session, ctx: Context, ids: Sequence[int], *, kind: Any,
                 reason: str, now: dt.datetime, data: dict[str, Any],
                 strip_nulls: bool = False) -> None:
    """One audit event per case of ``ids``, in one ``INSERT ... SELECT``, noted for sealing."""
    columns = ["occurred_at", "kind", "actor", "entity", "entity_id", "reason",
               "policy_version", "data"]
    audited = session.scalars(
        insert(AuditEvent).from_select(columns, select(
            literal(now, AuditEvent.occurred_at.type), kind, literal(ctx.actor),
            literal("disposal"), cast(Disposal.id, String), literal(reason),
            literal(ctx.policy.version), _json(session, data, strip_nulls=strip_nulls),
        ).where(_among(session, Disposal.id, list(ids))).order_by(Disposal.id)).returning(AuditEvent.id))
    note_inserted(session, audited)


def _summary(session: Session, ctx: Context, verb: str, criteria: Criteria, *,
             gone_at_source: bool, reason: str, now: dt.datetime, matching: int, acting: int,
             left: tuple[LeftOut, ...], extra: dict[str, Any]) -> int:
    """The event that records the action itself; returns its id."""
    kind = {"approve": "DisposalsApprovedByFilter", "defer": "DisposalsDeferredByFilter",
            "reject": "DisposalsRejectedByFilter",
            "exception": "DisposalExceptionsRaisedByFilter"}[verb]
    event = AuditEvent(occurred_at=now, kind=kind, actor=ctx.actor, entity="queue",
                       entity_id="filter", reason=reason, policy_version=ctx.policy.version,
                       data={"criteria": criteria.as_json(), "gone_at_source": gone_at_source,
                             "matching": matching, "acted": acting,
                             "left_out": {lo.code: lo.count for lo in left}, **extra,
                             **ctx.sod_data()})
    session.add(event)
    session.flush()
    return int(event.id)


@dataclass(frozen=True, kw_only=True)
class _Started:
    ids: list[int]
    matching: int
    left: tuple[LeftOut, ...]
    checks: _Checks
    cooling_days: list[int]


def _start(ctx: Context, session: Session, verb: str, criteria: Criteria, gone_at_source: bool,
           acknowledge_not_found: bool, expected: int) -> _Started:
    """Lock the cases to act on and check their number; count the selection, and (only when
    some are left out) why."""
    where = _selected(session, ctx, criteria, gone_at_source)
    checks = _checks(session, ctx, verb, where, acknowledge_not_found)
    ids, days = _lock(session, where, checks)
    if len(ids) != expected:
        raise _refuse_changed(verb, len(ids), expected)
    matching = int(session.scalar(select(func.count()).select_from(
        _from().where(*where).subquery())) or 0)
    left: tuple[LeftOut, ...] = ()
    if matching != len(ids):
        matching, _acting, left = _count(session, where, checks)
    return _Started(ids=ids, matching=matching, left=left, checks=checks, cooling_days=days)


def _check_expected(expected: int) -> None:
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
        raise LifecycleError("expected: must be the number of cases you confirmed (a whole "
                             "number, 0 or more)")


def approve_matching(ctx: Context, criteria: Criteria, *, reason: str, expected: int,
                     gone_at_source: bool = False,
                     acknowledge_not_found: bool = False) -> BulkResult:
    """Record the actor's approval of every case of the selection they may approve.

    The rules are ``review.approve``'s: a case pending review, due, not held, that the actor
    has not approved already (one live approval per case and person, ``uq_approvals_live``),
    whose data was found (or ``acknowledge_not_found``); a count case is approved once enough
    different people have approved it. Refused, with nothing changed, unless exactly
    ``expected`` cases qualify.
    """
    reason = required_text(reason, "reason: a reason is required")
    _check_expected(expected)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        started = _start(ctx, session, "approve", criteria, gone_at_source,
                         acknowledge_not_found, expected)
        ids, matching, left, checks = (started.ids, started.matching, started.left,
                                       started.checks)
        event_id = _summary(session, ctx, "approve", criteria, gone_at_source=gone_at_source,
                            reason=reason, now=now, matching=matching, acting=len(ids), left=left,
                            extra={"acknowledge_not_found": acknowledge_not_found})
        completed = 0
        people = (select(func.count(func.distinct(Approval.approver)))
                  .where(Approval.disposal_id == Disposal.id, Approval.voided_at.is_(None))
                  .correlate(Disposal).scalar_subquery())
        next_position = Disposal.stage + 1
        has_next = exists().where(DisposalStage.disposal_id == Disposal.id,
                                  DisposalStage.position == next_position).correlate(Disposal)
        next_group = (select(DisposalStage.group_name)
                      .where(DisposalStage.disposal_id == Disposal.id,
                             DisposalStage.position == next_position)
                      .correlate(Disposal).scalar_subquery())
        approved_stage = (select(Approval.stage)
                          .where(Approval.disposal_id == Disposal.id,
                                 Approval.approver == ctx.actor, Approval.voided_at.is_(None))
                          .correlate(Disposal).scalar_subquery())
        for chunk in _chunks(session, ids):
            chunk_ids = list(chunk)
            try:
                session.execute(insert(Approval).from_select(
                    ["disposal_id", "approver", "reason", "approved_at", "stage"],
                    select(Disposal.id, literal(ctx.actor), literal(reason),
                           literal(now, Approval.approved_at.type), Disposal.stage)
                    .where(_among(session, Disposal.id, chunk_ids)).order_by(Disposal.id)))
            except IntegrityError as exc:
                if not repeated_approval(exc):
                    raise
                raise LifecycleError(
                    f"{ctx.actor} approved some of these cases at the same moment from another "
                    "session: nothing was changed here; look at the selection again") from None
            # Complete first (a count case with enough different people, a staged case at its
            # last stage), then move the other staged cases on to their next stage: in that
            # order a case moved on is never taken for one at its last stage.
            # A one-approver case needs no count (this approval is the one): most cases of a
            # backlog, and the count is a lookup per case.
            done = _complete(session, chunk_ids, now, or_(
                and_(Disposal.stage.is_(None), or_(Disposal.approvals_required <= 1,
                                                   people >= Disposal.approvals_required)),
                and_(Disposal.stage.is_not(None), not_(has_next))), started.cooling_days)
            moved_on = session.scalars(
                update(Disposal)
                .where(_among(session, Disposal.id, chunk_ids), Disposal.state == "pending_review",
                       Disposal.stage.is_not(None), has_next)
                .values(stage=next_position, stage_group=next_group, updated_at=now)
                .returning(Disposal.id).execution_options(synchronize_session=False)).all()
            rest = session.scalars(
                update(Disposal)
                .where(_among(session, Disposal.id, chunk_ids), Disposal.state == "pending_review",
                       Disposal.stage.is_(None))
                .values(updated_at=now).returning(Disposal.id)
                .execution_options(synchronize_session=False)).all()
            if len(done) + len(moved_on) + len(rest) != len(chunk_ids):
                raise LifecycleError(
                    "some of the selected cases changed while they were being approved: "
                    "nothing was changed; look at the selection again")
            completed += len(done)
            # The keys and values ``review.approve`` writes for one case (null ones left out):
            # a count case has ``approvals_required``; a staged case the stage approved, its
            # name and group, and how many stages; a case now cooling off, when that ends.
            unstaged = Disposal.stage.is_(None)
            data: dict[str, Any] = {
                "approvals": people,
                "approvals_required": case((unstaged, Disposal.approvals_required),
                                           else_=literal(None, Integer)),
                "by_filter": literal(event_id, Integer), **ctx.sod_data(),
                "stage": approved_stage,
                "stage_name": _stage_column(DisposalStage.name, approved_stage),
                "stage_group": _stage_column(DisposalStage.group_name, approved_stage),
                "stages": case((unstaged, literal(None, Integer)), else_=(
                    select(func.count()).select_from(DisposalStage)
                    .where(DisposalStage.disposal_id == Disposal.id)
                    .correlate(Disposal).scalar_subquery())),
                "cooling_until": case(
                    *[(and_(Disposal.state == "cooling_off", Disposal.cooling_off_days == d),
                       literal((now + dt.timedelta(days=d)).isoformat(), String))
                      for d in started.cooling_days],
                    else_=literal(None, String)) if started.cooling_days
                else literal(None, String),
            }
            if checks.not_found:
                data["acknowledged_not_found"] = case(
                    *[(Disposal.record_id == rid, literal(system))
                      for rid, system in checks.not_found.items()],
                    else_=literal(None, String))
            _audit_cases(session, ctx, chunk_ids, reason=reason, now=now, data=data,
                         kind=case((Disposal.state == "pending_review",
                                    literal("DisposalApprovalRecorded")),
                                   else_=literal("DisposalApproved")),
                         strip_nulls=True)
    log.info("bulk_approved", acted=len(ids), completed=completed, matching=matching,
             left_out=sum(lo.count for lo in left))
    return BulkResult(verb="approve", matching=matching, acted=len(ids), completed=completed,
                      waiting=len(ids) - completed, left_out=left, event_id=event_id)


def _stage_column(column: Any, position: Any) -> Any:
    """``column`` of the case's stage at ``position`` (null for a count case)."""
    return (select(column).where(DisposalStage.disposal_id == Disposal.id,
                                 DisposalStage.position == position)
            .correlate(Disposal).scalar_subquery())


def _complete(session: Session, ids: list[int], now: dt.datetime,
              complete: ColumnElement[bool], days: list[int]) -> list[int]:
    """Cases of ``ids`` still pending review for which ``complete`` holds are approved: to
    ``cooling_off`` until ``now`` plus their ``cooling_off_days`` (one of ``days``) when they
    have some, else to ``approved`` (guarded by state). Returns their ids."""
    until: Any = literal(None, Disposal.cooling_until.type)
    if days:
        until = case(*[(Disposal.cooling_off_days == d,
                        literal(now + dt.timedelta(days=d), Disposal.cooling_until.type))
                       for d in days], else_=literal(None, Disposal.cooling_until.type))
    return list(session.scalars(
        update(Disposal)
        .where(_among(session, Disposal.id, ids), Disposal.state == "pending_review", complete)
        .values(state=case((Disposal.cooling_off_days > 0, literal("cooling_off")),
                           else_=literal("approved")),
                cooling_until=until, updated_at=now)
        .returning(Disposal.id).execution_options(synchronize_session=False)).all())


def _close_matching(ctx: Context, verb: str, criteria: Criteria, *, reason: str, expected: int,
                    gone_at_source: bool, until: dt.date | None) -> BulkResult:
    reason = required_text(reason, "reason: a reason is required")
    _check_expected(expected)
    now = ctx.clock.now()
    state = "deferred" if verb == "defer" else "rejected"
    with write_transaction(ctx.sessions) as session:
        started = _start(ctx, session, verb, criteria, gone_at_source, False, expected)
        ids, matching, left = started.ids, started.matching, started.left
        extra = {"until": until.isoformat()} if until is not None else {}
        event_id = _summary(session, ctx, verb, criteria, gone_at_source=gone_at_source,
                            reason=reason, now=now, matching=matching, acting=len(ids),
                            left=left, extra=extra)
        for chunk in _chunks(session, ids):
            chunk_ids = list(chunk)
            records = select(Disposal.record_id).where(_among(session, Disposal.id, chunk_ids))
            if verb == "defer":
                session.execute(update(Record).where(Record.id.in_(records))
                                .values(deferred_until=until, updated_at=now)
                                .execution_options(synchronize_session=False))
            else:
                due = (select(Disposal.due_on)
                       .where(Disposal.record_id == Record.id, _among(session, Disposal.id, chunk_ids))
                       .correlate(Record).scalar_subquery())
                session.execute(update(Record).where(Record.id.in_(records))
                                .values(rejected_due_on=due, updated_at=now)
                                .execution_options(synchronize_session=False))
            moved = len(session.scalars(
                update(Disposal).where(_among(session, Disposal.id, chunk_ids), Disposal.state.in_(CLOSABLE))
                .values(state=state, reason=reason, updated_at=now).returning(Disposal.id)
                .execution_options(synchronize_session=False)).all())
            if moved != len(chunk_ids):
                raise LifecycleError(
                    f"some of the selected cases changed while they were being {state}: "
                    "nothing was changed; look at the selection again")
            data: dict[str, Any] = {**{k: literal(v) for k, v in extra.items()},
                                    "by_filter": literal(event_id, Integer)}
            _audit_cases(session, ctx, chunk_ids, reason=reason, now=now, data=data,
                         kind=literal("DisposalDeferred" if verb == "defer"
                                      else "DisposalRejected"))
    log.info(f"bulk_{state}", acted=len(ids), matching=matching,
             left_out=sum(lo.count for lo in left))
    return BulkResult(verb=verb, matching=matching, acted=len(ids), completed=len(ids),
                      left_out=left, event_id=event_id)


def defer_matching(ctx: Context, criteria: Criteria, *, reason: str, until: dt.date,
                   expected: int, gone_at_source: bool = False) -> BulkResult:
    """Defer every case of the selection that review may close (``review.defer``'s rules):
    the cases close as ``deferred`` and their records are not queued again before ``until``."""
    today = ctx.clock.today()
    if until <= today:
        raise LifecycleError(f"until: {until.isoformat()} must be after today "
                             f"({today.isoformat()})")
    return _close_matching(ctx, "defer", criteria, reason=reason, expected=expected,
                           gone_at_source=gone_at_source, until=until)


def reject_matching(ctx: Context, criteria: Criteria, *, reason: str, expected: int,
                    gone_at_source: bool = False) -> BulkResult:
    """Reject every case of the selection that review may close (``review.reject``'s rules):
    the records are retained and not queued again until their due date changes."""
    return _close_matching(ctx, "reject", criteria, reason=reason, expected=expected,
                           gone_at_source=gone_at_source, until=None)


def except_matching(ctx: Context, criteria: Criteria, *, reason: str, expected: int,
                    gone_at_source: bool = False) -> BulkResult:
    """Raise an exception on every case of the selection pending review or cooling off
    (``review.raise_exception``'s rules): the cases go back to the IG officer as
    ``exception``, their live approvals voided, a staged case back at its first stage."""
    reason = required_text(reason, "reason: a reason is required")
    _check_expected(expected)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        started = _start(ctx, session, "exception", criteria, gone_at_source, False, expected)
        ids, matching, left = started.ids, started.matching, started.left
        event_id = _summary(session, ctx, "exception", criteria, gone_at_source=gone_at_source,
                            reason=reason, now=now, matching=matching, acting=len(ids),
                            left=left, extra={})
        for chunk_ids in _chunks(session, ids):
            # Audited first, so that each event says the state the case was in.
            _audit_cases(session, ctx, chunk_ids, reason=reason, now=now,
                         kind=literal("DisposalExceptionRaised"),
                         data={"was": Disposal.state, "by_filter": literal(event_id, Integer)})
            moved = session.scalars(
                update(Disposal).where(_among(session, Disposal.id, chunk_ids),
                                       Disposal.state.in_(EXCEPTABLE))
                .values(state="exception", reason=reason, updated_at=now, cooling_until=None)
                .returning(Disposal.id).execution_options(synchronize_session=False)).all()
            if len(moved) != len(chunk_ids):
                raise LifecycleError(
                    "some of the selected cases changed while exceptions were being raised on "
                    "them: nothing was changed; look at the selection again")
            session.execute(update(Approval)
                            .where(_among(session, Approval.disposal_id, chunk_ids),
                                   Approval.voided_at.is_(None))
                            .values(voided_at=now).execution_options(synchronize_session=False))
            restart_stages(session, chunk_ids)
    log.info("bulk_exceptions_raised", acted=len(ids), matching=matching,
             left_out=sum(lo.count for lo in left))
    return BulkResult(verb="exception", matching=matching, acted=len(ids), completed=len(ids),
                      left_out=left, event_id=event_id)
