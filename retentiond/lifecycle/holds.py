"""Holds: place, lift, list, expire. Holds win over everything (DESIGN.md section 3, rule 6).

Placing a hold moves the live cases it covers to ``held`` and voids their approvals; lifting
one returns the cases no other hold covers to ``pending_review``: never straight to disposal.

A hold's scope is one record, a subject, a category, a controller, or a saved filter
(``filter:<name or id>``). A filter hold copies the filter's record criteria when it is
placed and keeps them (``holds.criteria``): it covers every record that matches them at the
moment of each check, records imported later included, whatever happens to the filter.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, not_, select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.filters import (
    RECORD_FIELDS,
    Criteria,
    check_known,
    find_filter,
    parse_criteria,
    record_condition,
)
from retentiond.lifecycle.sql import hold_covers_record, move_cases, restart_stages
from retentiond.logs import get_logger
from retentiond.registry.chain import note_inserted
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    HOLD_SCOPES,
    HOLD_TYPES,
    Approval,
    AuditEvent,
    Controller,
    Disposal,
    Hold,
    Record,
    Subject,
)

#: Live cases a hold stops (a hold cancels a manual task not yet confirmed, and a cooling-off
#: wait: holds win at any moment); ``executing``
#: ones are re-checked by the executor in its own transaction, and may still be stopped there.
HOLDABLE = ("pending_review", "approved", "pending_confirmation", "cooling_off")
log = get_logger("retentiond.holds")
#: The advisory lock evaluation takes for its queueing transaction on PostgreSQL
#: (``retentiond.lifecycle.evaluate.QUEUE_LOCK_KEY``; not imported, evaluate imports this
#: module). Placing a hold takes it too, so a hold committed while an evaluation runs cannot
#: leave a case it covers newly queued as ``pending_review``: one waits for the other.
#: Lifting and expiring take it too, so that a lift never returns to review a case that a
#: hold being placed at the same moment covers.
QUEUE_LOCK_KEY = (742100, 2)


def lock_holds(session: Session) -> None:
    """Serialise the changes of what holds cover (place, lift, expire) with each other and
    with evaluation's queueing, until the transaction ends (PostgreSQL; on SQLite the write
    lock of :func:`retentiond.registry.db.write_transaction` does it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(*QUEUE_LOCK_KEY)))


@dataclass(frozen=True, kw_only=True)
class HoldView:
    """A hold as commands and pages show it."""

    id: int
    scope: str
    type: str
    reason: str
    placed_by: str
    placed_at: dt.datetime
    until: dt.date | None
    lifted_at: dt.datetime | None
    lifted_by: str | None
    lift_reason: str | None
    active: bool
    records_covered: int
    #: What the hold covers, in plain English.
    covers: str = ""
    #: A filter hold's criteria, as copied from the saved filter when it was placed.
    criteria: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "scope": self.scope, "type": self.type, "reason": self.reason,
            "placed_by": self.placed_by, "placed_at": self.placed_at.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "lifted_at": self.lifted_at.isoformat() if self.lifted_at else None,
            "lifted_by": self.lifted_by, "lift_reason": self.lift_reason,
            "active": self.active, "records_covered": self.records_covered,
            "covers": self.covers, "criteria": self.criteria,
        }


def parse_scope(text: str) -> tuple[str, str]:
    """``record:ID``, ``subject:REF``, ``category:CODE``, ``controller:CODE`` or
    ``filter:NAME`` (or ``filter:ID``, a saved filter's number)."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in HOLD_SCOPES or not value.strip():
        raise LifecycleError(
            f"scope {text!r} is not one of record:ID, subject:REF, category:CODE, "
            "controller:CODE, filter:NAME"
        )
    return kind, value.strip()


def describe_scope(kind: str, value: str, criteria: dict[str, Any] | None = None) -> str:
    """What a hold covers, in plain English."""
    if kind == "filter":
        return f"{parse_criteria(criteria or {}).describe()} (saved filter {value!r})"
    return {"record": f"record {value}", "subject": f"records of subject {value}",
            "category": f"records in category {value}",
            "controller": f"records of controller {value}"}.get(kind, f"{kind}:{value}")


def covered_by(kind: str, value: str, criteria: dict[str, Any] | None = None) -> ColumnElement[bool]:
    """Rows of ``records`` in one hold's scope (``criteria``: a filter hold's, as stored)."""
    if kind == "filter":
        parsed = parse_criteria(criteria or {})
        # correlate(None): a standalone lookup, even inside a query that joins controllers.
        controller_id = select(Controller.id).where(
            Controller.code == parsed.controller).correlate(None).scalar_subquery()
        return record_condition(parsed, controller_id)
    if kind == "record":
        return Record.record_key == value
    if kind == "category":
        return Record.category == value
    if kind == "subject":
        return Record.subject_id == select(Subject.id).where(Subject.ref == value).scalar_subquery()
    if kind == "controller":
        return Record.controller_id == (
            select(Controller.id).where(Controller.code == value).scalar_subquery()
        )
    raise LifecycleError(f"unknown hold scope {kind!r}")


def _filter_scope(ctx: Context, session: Session, value: str) -> tuple[int, str, Criteria]:
    """The saved filter a ``filter:`` scope names: its id, name and the criteria a hold keeps."""
    saved = find_filter(session, value)
    try:
        criteria = parse_criteria(saved.criteria).for_hold()
        check_known(ctx, session, criteria)
    except LifecycleError as exc:
        raise LifecycleError(f"saved filter {saved.name!r}: {exc}") from None
    if not criteria.describes_records:
        raise LifecycleError(
            f"saved filter {saved.name!r} has no criterion about records (one of "
            f"{', '.join(RECORD_FIELDS)}): a hold by it would cover every record. The case "
            "state is not part of a hold's scope")
    return saved.id, saved.name, criteria


def _scope_exists(ctx: Context, session: Session, kind: str, value: str) -> bool:
    if kind == "category":
        return value in ctx.policy.categories or session.scalar(
            select(Record.id).where(Record.category == value).limit(1)
        ) is not None
    table: Any = {"record": Record.record_key, "subject": Subject.ref,
                  "controller": Controller.code}[kind]
    return session.scalar(select(table).where(table == value).limit(1)) is not None


#: Why a case moved because of a hold, as the case's reason and its audit events say. Kept
#: here, beside the one place that writes them, so that ``is_hold_case_reason`` (what a
#: controller user must not be shown: the council's reason) always recognises them.
EXPIRED_CASE_REASON = "the hold that covered it expired"
_HOLD_CASE_REASON = re.compile(r"^hold \d+( lifted)?: ")


def held_case_reason(hold: Hold) -> str:
    return f"hold {hold.id}: {hold.reason}"


def lifted_case_reason(hold: Hold, reason: str) -> str:
    return f"hold {hold.id} lifted: {reason}"


def is_hold_case_reason(reason: str | None) -> bool:
    """True for a case reason written because of a hold (it carries the hold's reason, or its
    lift reason)."""
    return reason is not None and (reason == EXPIRED_CASE_REASON
                                   or _HOLD_CASE_REASON.match(reason) is not None)


def _audit_many(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        note_inserted(session, session.scalars(insert(AuditEvent).returning(AuditEvent.id), rows))


def _move_cases(ctx: Context, session: Session, ids: list[int], expected: tuple[str, ...],
                state: str, kind: str, reason: str) -> list[int]:
    """Move the cases still in an ``expected`` state (guarded: one another transaction moved
    meanwhile is left as it is), void their approvals, audit each; return those moved."""
    now = ctx.clock.now()
    moved = move_cases(session, ids, expected=expected, state=state, updated_at=now,
                       reason=reason, cooling_until=None)
    if not moved:
        return moved
    session.execute(update(Approval)
                    .where(Approval.disposal_id.in_(moved), Approval.voided_at.is_(None))
                    .values(voided_at=now))
    # Approvals gone: a staged case starts again at its first stage.
    restart_stages(session, moved)
    _audit_many(session, [
        {"occurred_at": now, "kind": kind, "actor": ctx.actor, "entity": "disposal",
         "entity_id": str(i), "reason": reason, "policy_version": ctx.policy.version, "data": {}}
        for i in moved
    ])
    return moved


@dataclass(frozen=True, kw_only=True)
class HoldRequest:
    """One hold to place: what :func:`place_hold` takes, for :func:`place_holds`."""

    scope: str
    hold_type: str
    reason: str
    until: dt.date | None = None


class HoldsRefused(LifecycleError):
    """Some of the holds asked for at once cannot be placed; none was.
    ``problems``: ``(index of the request, field, message)``."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        self.problems = problems
        index, field, message = problems[0]
        super().__init__(f"{len(problems)} hold(s) refused, none placed; first: hold "
                         f"{index + 1}: {field}: {message}")


@dataclass(frozen=True, kw_only=True)
class _Checked:
    kind: str
    value: str
    hold_type: str
    reason: str
    until: dt.date | None


def _check_request(request: HoldRequest, today: dt.date) -> _Checked:
    """The request's own fields (scope syntax, type, reason, until), or ``LifecycleError``
    whose message starts with the field."""
    try:
        kind, value = parse_scope(request.scope)
    except LifecycleError as exc:
        raise _FieldError("scope", str(exc)) from None
    if request.hold_type not in HOLD_TYPES:
        raise _FieldError("type", f"hold type {request.hold_type!r} is not one of "
                          f"{', '.join(HOLD_TYPES)}")
    try:
        reason = required_text(request.reason, "a hold needs a reason")
    except LifecycleError as exc:
        raise _FieldError("reason", str(exc)) from None
    if request.until is not None and request.until < today:
        raise _FieldError("until", f"{request.until.isoformat()} is in the past")
    return _Checked(kind=kind, value=value, hold_type=request.hold_type, reason=reason,
                    until=request.until)


class _FieldError(LifecycleError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def _resolve_scope(ctx: Context, session: Session,
                   checked: _Checked) -> tuple[str, dict[str, str] | None, int | None]:
    """A scope that names something: its value as stored, and a filter hold's criteria."""
    if checked.kind == "filter":
        filter_id, value, parsed = _filter_scope(ctx, session, checked.value)
        return value, parsed.as_json(), filter_id
    if not _scope_exists(ctx, session, checked.kind, checked.value):
        raise _FieldError("scope", f"no {checked.kind} {checked.value!r} is known to the "
                          "registry: nothing to hold")
    return checked.value, None, None


def _place(ctx: Context, session: Session, checked: _Checked, value: str,
           criteria: dict[str, str] | None, filter_id: int | None) -> Hold:
    """Write one hold and its event, and hold the live cases it covers (in the caller's
    transaction, which holds ``lock_holds``)."""
    kind = checked.kind
    hold = Hold(scope_kind=kind, scope_value=value, hold_type=checked.hold_type,
                reason=checked.reason, placed_by=ctx.actor, placed_at=ctx.clock.now(),
                until=checked.until, criteria=criteria, filter_id=filter_id)
    session.add(hold)
    session.flush()
    data: dict[str, Any] = {"scope": f"{kind}:{value}", "type": checked.hold_type,
                            "until": checked.until.isoformat() if checked.until else None}
    if criteria is not None:
        data.update(filter_id=filter_id, criteria=criteria)
    record_event(session, kind="HoldPlaced", actor=ctx.actor, entity="hold",
                 entity_id=hold.id, at=hold.placed_at, reason=hold.reason,
                 policy_version=ctx.policy.version, data=data)
    ids = list(session.scalars(
        select(Disposal.id).join(Record, Record.id == Disposal.record_id)
        .where(Disposal.state.in_(HOLDABLE), covered_by(kind, value, criteria))
    ))
    # An approval, a claim or a confirmation that committed first moved its case on
    # (approved and pending_confirmation are held too); ``executing`` is the executor's to
    # re-check under its lease.
    held = _move_cases(ctx, session, ids, HOLDABLE, "held", "DisposalHeld",
                       held_case_reason(hold))
    log.info("hold_placed", hold_id=hold.id, scope_kind=kind, type=checked.hold_type,
             cases_held=len(held))
    return hold


def place_hold(ctx: Context, *, scope: str, hold_type: str, reason: str,
               until: dt.date | None = None) -> HoldView:
    """Place a hold; the live cases it covers move to ``held`` in the same transaction."""
    today = ctx.clock.today()
    try:
        checked = _check_request(HoldRequest(scope=scope, hold_type=hold_type, reason=reason,
                                             until=until), today)
    except _FieldError as exc:
        message = str(exc)
        if exc.field == "until":
            message = f"--until {message}"
        raise LifecycleError(message) from None
    with write_transaction(ctx.sessions) as session:
        # Wait for a running evaluation (or lift) to commit, so the cases it queues are seen
        # (and held) here; an evaluation that starts later waits for this hold, then skips
        # what it covers.
        lock_holds(session)
        try:
            value, criteria, filter_id = _resolve_scope(ctx, session, checked)
        except _FieldError as exc:
            raise LifecycleError(str(exc)) from None
        hold = _place(ctx, session, checked, value, criteria, filter_id)
        return _view(session, hold, today)


def _resolve_all(ctx: Context, session: Session, requests: list[HoldRequest]
                 ) -> tuple[list[tuple[_Checked, tuple[str, dict[str, str] | None, int | None]]],
                            list[tuple[int, str, str]]]:
    """Each request checked and its scope resolved, and every problem found, by index."""
    today = ctx.clock.today()
    problems: list[tuple[int, str, str]] = []
    placeable = []
    for index, request in enumerate(requests):
        try:
            checked = _check_request(request, today)
            placeable.append((checked, _resolve_scope(ctx, session, checked)))
        except _FieldError as exc:
            problems.append((index, exc.field, str(exc)))
        except LifecycleError as exc:  # a saved filter that cannot be held by
            problems.append((index, "scope", str(exc)))
    return placeable, problems


def check_holds(ctx: Context, requests: list[HoldRequest]) -> list[tuple[int, str, str]]:
    """What :func:`place_holds` would refuse in ``requests`` now, writing nothing:
    ``(index, field, message)`` for each problem."""
    with ctx.sessions() as session:
        return _resolve_all(ctx, session, requests)[1]


def place_holds(ctx: Context, requests: list[HoldRequest], *,
                source: str | None = None) -> list[int]:
    """Place every hold of ``requests`` in one transaction, or none: each is checked as
    :func:`place_hold` checks one (its scope must name something the registry knows), and if
    any is wrong :class:`HoldsRefused` lists every problem and nothing is written. Each hold
    has its own ``HoldPlaced`` event and holds the live cases it covers, as if placed one by
    one; one ``HoldsPlaced`` event records the whole action (``source``: the file's name, if
    any). Returns the new holds' ids, in the order asked."""
    with write_transaction(ctx.sessions) as session:
        lock_holds(session)
        placeable, problems = _resolve_all(ctx, session, requests)
        if problems:
            raise HoldsRefused(problems)
        ids = [_place(ctx, session, checked, *scope).id for checked, scope in placeable]
        record_event(session, kind="HoldsPlaced", actor=ctx.actor, entity="holds",
                     entity_id=source or "request", at=ctx.clock.now(),
                     policy_version=ctx.policy.version,
                     data={"holds": len(ids), "first_id": ids[0] if ids else None,
                           "last_id": ids[-1] if ids else None})
        return ids


def return_unheld_to_review(ctx: Context, session: Session, as_of: dt.date, why: str) -> int:
    """Held cases that no active hold covers any more go back to ``pending_review``."""
    ids = list(session.scalars(
        select(Disposal.id).join(Record, Record.id == Disposal.record_id)
        .where(Disposal.state == "held", not_(hold_covers_record(session, as_of)))
    ))
    return len(_move_cases(ctx, session, ids, ("held",), "pending_review",
                           "DisposalReturnedToReview", why))


def lift_hold(ctx: Context, hold_id: int, *, reason: str) -> HoldView:
    """Lift a hold; cases no other hold covers return to review. Lifting twice is a no-op."""
    reason = required_text(reason, "lifting a hold needs a reason")
    today = ctx.clock.today()
    with write_transaction(ctx.sessions) as session:
        lock_holds(session)
        hold = session.get(Hold, hold_id, with_for_update=True)
        if hold is None:
            raise LifecycleError(f"no hold {hold_id}")
        if hold.lifted_at is None:
            hold.lifted_at, hold.lifted_by, hold.lift_reason = (
                ctx.clock.now(), ctx.actor, reason
            )
            record_event(session, kind="HoldLifted", actor=ctx.actor, entity="hold",
                         entity_id=hold.id, at=hold.lifted_at, reason=hold.lift_reason,
                         policy_version=ctx.policy.version, data=_scope_data(hold))
            session.flush()
            back = return_unheld_to_review(ctx, session, today,
                                           lifted_case_reason(hold, reason))
            log.info("hold_lifted", hold_id=hold.id, cases_returned_to_review=back)
        return _view(session, hold, today)


def expire_holds(ctx: Context, session: Session, as_of: dt.date) -> int:
    """Lift holds whose ``until`` date has passed; return how many. Runs in the caller's
    transaction (a :func:`~retentiond.registry.db.write_transaction`)."""
    now = ctx.clock.now()
    lock_holds(session)
    ended = list(session.scalars(
        select(Hold).where(Hold.lifted_at.is_(None), Hold.until.is_not(None), Hold.until < as_of)
    ))
    for hold in ended:
        hold.lifted_at, hold.lifted_by = now, "retentiond"
        hold.lift_reason = f"expired: its end date {hold.until} has passed"
        record_event(session, kind="HoldExpired", actor="retentiond", entity="hold",
                     entity_id=hold.id, at=now, reason=hold.lift_reason,
                     policy_version=ctx.policy.version, data=_scope_data(hold))
    if ended:
        session.flush()
        return_unheld_to_review(ctx, session, as_of, EXPIRED_CASE_REASON)
    return len(ended)


def _scope_data(hold: Hold) -> dict[str, Any] | None:
    """What a lift or expiry records of a filter hold: the criteria it had (no personal data:
    controller codes, categories, rules, actions and dates)."""
    if hold.scope_kind != "filter":
        return None
    return {"scope": f"filter:{hold.scope_value}", "filter_id": hold.filter_id,
            "criteria": hold.criteria}


def _view(session: Session, hold: Hold, today: dt.date) -> HoldView:
    active = hold.lifted_at is None and (hold.until is None or hold.until >= today)
    covered = session.scalar(
        select(func.count()).select_from(Record)
        .where(covered_by(hold.scope_kind, hold.scope_value, hold.criteria))
    )
    return HoldView(
        id=hold.id, scope=f"{hold.scope_kind}:{hold.scope_value}", type=hold.hold_type,
        reason=hold.reason, placed_by=hold.placed_by, placed_at=hold.placed_at, until=hold.until,
        lifted_at=hold.lifted_at, lifted_by=hold.lifted_by, lift_reason=hold.lift_reason,
        active=active, records_covered=int(covered or 0),
        covers=describe_scope(hold.scope_kind, hold.scope_value, hold.criteria),
        criteria=dict(hold.criteria) if hold.criteria is not None else None,
    )


def list_holds(ctx: Context, *, include_lifted: bool = False) -> list[HoldView]:
    """Holds, newest first, with how many records each covers."""
    today = ctx.clock.today()
    with ctx.sessions() as session:
        query = select(Hold).order_by(Hold.id.desc())
        if not include_lifted:
            query = query.where(Hold.lifted_at.is_(None))
        return [_view(session, h, today) for h in session.scalars(query)]
