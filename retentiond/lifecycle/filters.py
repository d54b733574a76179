"""Saved filters: a named set of the review queue's criteria, and the hold scope built on one.

A saved filter keeps the queue's criteria (controller, category, rule, action, due date range
and case state) under a name, so an officer can come back to the same view. A hold scoped by
a saved filter (``filter:<name or id>``) copies the criteria that describe *records* into the
hold when it is placed: the hold's scope is evidence and must not move when someone deletes
or re-saves the filter later. ``state`` describes a case, not a record, and is never part of a
hold's scope: a hold on "cases pending review" would stop covering its cases the moment it
held them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, true
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.logs import get_logger
from retentiond.policy import ACTIONS
from retentiond.policy.engine import TERMINATION_RULE_ID
from retentiond.registry.models import (
    DISPOSAL_STATES,
    Controller,
    Disposal,
    Hold,
    Record,
    SavedFilter,
)
from retentiond.wording import long_date

#: Criteria that describe records: the ones a hold by filter keeps.
RECORD_FIELDS = ("controller", "category", "rule", "action", "due_from", "due_to")
#: Every criterion a saved filter keeps (``state`` only for the queue).
FIELDS = (*RECORD_FIELDS, "state")
NAME_MAX = 100
log = get_logger("retentiond.filters")


@dataclass(frozen=True, kw_only=True)
class Criteria:
    """What a saved filter selects. Every field is optional; all that are set must match."""

    controller: str | None = None
    category: str | None = None
    rule: str | None = None
    action: str | None = None
    due_from: dt.date | None = None
    due_to: dt.date | None = None
    state: str | None = None

    def as_json(self) -> dict[str, str]:
        """The criteria that are set, dates as ``YYYY-MM-DD`` (what is stored)."""
        out: dict[str, str] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, dt.date) else value
        return out

    def for_hold(self) -> Criteria:
        """The criteria a hold keeps: those about records, without the case state."""
        return replace(self, state=None)

    @property
    def describes_records(self) -> bool:
        return any(getattr(self, name) is not None for name in RECORD_FIELDS)

    def describe(self) -> str:
        """Plain English: ``records of controller DEMO-LA-01 in category education due on or
        before 1 March 2030``."""
        parts = ["records"]
        if self.controller:
            parts.append(f"of controller {self.controller}")
        if self.category:
            parts.append(f"in category {self.category}")
        if self.rule:
            parts.append(f"under rule {self.rule}")
        if self.action:
            parts.append(f"to be disposed of by {self.action}")
        if self.due_from and self.due_to:
            parts.append(f"due from {long_date(self.due_from)} to {long_date(self.due_to)}"
                         " inclusive")
        elif self.due_from:
            parts.append(f"due on or after {long_date(self.due_from)}")
        elif self.due_to:
            parts.append(f"due on or before {long_date(self.due_to)}")
        if len(parts) == 1:
            parts.append("of every kind")
        text = " ".join(parts)
        if self.state:
            text += f" (in the queue: cases {self.state.replace('_', ' ')})"
        return text


def parse_criteria(data: Mapping[str, Any]) -> Criteria:
    """Criteria from stored JSON, an API body or query parameters. Empty values are unset.

    Raises ``LifecycleError`` naming the field: ``due_to: '2030-02-30' is not a date``.
    """
    if not isinstance(data, Mapping):
        raise LifecycleError("criteria: must be an object of field: value")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise LifecycleError(f"{unknown[0]}: not a filter criterion (one of {', '.join(FIELDS)})")
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = data.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            raise LifecycleError(f"{name}: must be text, not {type(raw).__name__}")
        text = raw.strip()
        if not text:
            continue
        if len(text) > 200:
            raise LifecycleError(f"{name}: longer than 200 characters")
        if name in ("due_from", "due_to"):
            try:
                values[name] = dt.date.fromisoformat(text)
            except ValueError:
                raise LifecycleError(f"{name}: {text!r} is not a date (YYYY-MM-DD)") from None
            continue
        if name == "action" and text not in ACTIONS:
            raise LifecycleError(f"action: {text!r} is not one of {', '.join(sorted(ACTIONS))}")
        if name == "state" and text not in DISPOSAL_STATES:
            raise LifecycleError(f"state: {text!r} is not one of {', '.join(DISPOSAL_STATES)}")
        values[name] = text
    criteria = Criteria(**values)
    if criteria.due_from and criteria.due_to and criteria.due_from > criteria.due_to:
        raise LifecycleError("due_to: must not be before due_from")
    return criteria


def check_known(ctx: Context, session: Session, criteria: Criteria) -> None:
    """Refuse criteria naming a controller, category or rule nothing has ever had: a typo
    would otherwise save (or hold) a filter that matches nothing."""
    if criteria.controller and session.scalar(
            select(Controller.id).where(Controller.code == criteria.controller)) is None:
        raise LifecycleError(f"controller: no controller {criteria.controller!r} is known to "
                             "the registry")
    if criteria.category and criteria.category not in ctx.policy.categories and session.scalar(
            select(Record.id).where(Record.category == criteria.category).limit(1)) is None:
        raise LifecycleError(f"category: {criteria.category!r} is not a category of the policy "
                             "or of any record")
    rules = {r.id for r in ctx.policy.rules} | {TERMINATION_RULE_ID}
    if criteria.rule and criteria.rule not in rules and session.scalar(
            select(Record.id).where(Record.due_rule == criteria.rule).limit(1)) is None:
        raise LifecycleError(f"rule: {criteria.rule!r} is not a rule of the policy or of any "
                             "record")


def record_condition(criteria: Criteria, controller_id: Any) -> ColumnElement[bool]:
    """Rows of ``records`` that match ``criteria`` (the record's current decision: its due
    date, rule and action), ``controller_id`` being the controller's id (a literal or a
    scalar subquery). Never NULL: a record without a due date matches no criterion on one, so
    ``NOT`` of this is a plain condition too."""
    where: list[ColumnElement[bool]] = []
    if criteria.controller is not None:
        where.append(Record.controller_id == controller_id)
    if criteria.category is not None:
        where.append(Record.category == criteria.category)
    if criteria.rule is not None:
        where.extend([Record.due_rule.is_not(None), Record.due_rule == criteria.rule])
    if criteria.action is not None:
        where.extend([Record.due_action.is_not(None), Record.due_action == criteria.action])
    if criteria.due_from is not None or criteria.due_to is not None:
        where.append(Record.due_on.is_not(None))
    if criteria.due_from is not None:
        where.append(Record.due_on >= criteria.due_from)
    if criteria.due_to is not None:
        where.append(Record.due_on <= criteria.due_to)
    if not where:  # never stored for a hold (place_hold refuses it), but be exact
        return true()
    return and_(*where)


def case_conditions(criteria: Criteria, controller_id: int | None, *,
                    gone_at_source: bool = False) -> list[ColumnElement[bool]]:
    """The review queue's selection of cases (``Disposal`` joined with its ``Record``): the
    case's own state, rule, action and due date, the record's category and controller
    (``controller_id``: the id of ``criteria.controller``, looked up by the caller, -1 for
    none such). The queue's pages and bulk review by filter both select with this, so the
    number a reviewer sees is the number acted on."""
    where: list[ColumnElement[bool]] = []
    if criteria.state:
        where.append(Disposal.state == criteria.state)
    if criteria.rule:
        where.append(Disposal.rule_id == criteria.rule)
    if criteria.action:
        where.append(Disposal.action == criteria.action)
    if criteria.due_from:
        where.append(Disposal.due_on >= criteria.due_from)
    if criteria.due_to:
        where.append(Disposal.due_on <= criteria.due_to)
    if criteria.category:
        where.append(Record.category == criteria.category)
    if criteria.controller:
        where.append(Record.controller_id == (controller_id if controller_id is not None
                                              else -1))
    if gone_at_source:
        where.append(Record.gone_at_source_at.is_not(None))
    return where


def controller_ids(session: Session, criteria: list[Criteria]) -> dict[str, int]:
    """Controller codes named by some criteria -> ids (one small query); an unknown code is
    left out and matches nothing (``-1``)."""
    codes = {c.controller for c in criteria if c.controller}
    if not codes:
        return {}
    return {code: ident for code, ident in session.execute(
        select(Controller.code, Controller.id).where(Controller.code.in_(codes)))}


# --- saved filters --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class FilterView:
    """A saved filter as commands and pages show it."""

    id: int
    name: str
    criteria: Criteria
    owner: str
    created_at: dt.datetime
    #: Active holds placed from this filter (each keeps its own copy of the criteria).
    holds: list[int]

    @property
    def description(self) -> str:
        return self.criteria.describe()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "criteria": self.criteria.as_json(),
                "description": self.description, "owner": self.owner,
                "created_at": self.created_at.isoformat(), "holds": self.holds}


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise LifecycleError("name: enter a name for the filter")
    if len(name) > NAME_MAX:
        raise LifecycleError(f"name: longer than {NAME_MAX} characters")
    if name.isdigit():
        raise LifecycleError("name: must not be only digits (a number names a filter by its id)")
    if any(ord(ch) < 32 for ch in name):
        raise LifecycleError("name: must not contain control characters")
    return name


def _live_holds(session: Session, filter_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in filter_ids}
    if filter_ids:
        for hold_id, filter_id in session.execute(
                select(Hold.id, Hold.filter_id).where(Hold.filter_id.in_(filter_ids),
                                                      Hold.lifted_at.is_(None))
                .order_by(Hold.id)):
            if filter_id is not None:
                out[filter_id].append(hold_id)
    return out


def _view(row: SavedFilter, holds: list[int]) -> FilterView:
    return FilterView(id=row.id, name=row.name, criteria=parse_criteria(row.criteria),
                      owner=row.owner, created_at=row.created_at, holds=holds)


def find_filter(session: Session, ref: str) -> SavedFilter:
    """A saved filter by id (digits) or by name; ``LifecycleError`` if there is none."""
    ref = ref.strip()
    row = session.get(SavedFilter, int(ref)) if ref.isdigit() and int(ref) < 2**62 else \
        session.scalar(select(SavedFilter).where(SavedFilter.name == ref))
    if row is None:
        raise LifecycleError(f"no saved filter {ref!r}")
    return row


def save_filter(ctx: Context, *, name: str, criteria: Mapping[str, Any]) -> FilterView:
    """Save criteria under a new name (names are unique: delete a filter to reuse its name)."""
    name = check_name(name)
    parsed = parse_criteria(criteria)
    if not parsed.as_json():
        raise LifecycleError("criteria: choose at least one filter to save")
    with ctx.sessions.begin() as session:
        check_known(ctx, session, parsed)
        if session.scalar(select(SavedFilter.id).where(SavedFilter.name == name)) is not None:
            raise LifecycleError(f"name: a saved filter called {name!r} already exists")
        row = SavedFilter(name=name, criteria=parsed.as_json(), owner=ctx.actor,
                          created_at=ctx.clock.now())
        session.add(row)
        session.flush()
        record_event(session, kind="FilterSaved", actor=ctx.actor, entity="saved_filter",
                     entity_id=row.id, at=row.created_at, reason=None,
                     policy_version=ctx.policy.version,
                     data={"name": name, "criteria": parsed.as_json()})
        log.info("filter_saved", filter_id=row.id)
        return _view(row, [])


def list_filters(ctx: Context) -> list[FilterView]:
    """Saved filters by name, with the active holds placed from each."""
    with ctx.sessions() as session:
        rows = list(session.scalars(select(SavedFilter).order_by(SavedFilter.name)))
        holds = _live_holds(session, [r.id for r in rows])
        return [_view(r, holds[r.id]) for r in rows]


def get_filter(ctx: Context, ref: str) -> FilterView:
    with ctx.sessions() as session:
        row = find_filter(session, ref)
        return _view(row, _live_holds(session, [row.id])[row.id])


def delete_filter(ctx: Context, ref: str) -> FilterView:
    """Delete a saved filter. Harmless to holds placed from it: each keeps its own copy of
    the criteria, and goes on covering exactly what it covered (the audit event lists them)."""
    with ctx.sessions.begin() as session:
        row = find_filter(session, ref)
        view = _view(row, _live_holds(session, [row.id])[row.id])
        session.execute(delete(SavedFilter).where(SavedFilter.id == row.id))
        record_event(session, kind="FilterDeleted", actor=ctx.actor, entity="saved_filter",
                     entity_id=row.id, at=ctx.clock.now(), reason=None,
                     policy_version=ctx.policy.version,
                     data={"name": view.name, "criteria": view.criteria.as_json(),
                           "active_holds_keep_their_copy": view.holds})
        log.info("filter_deleted", filter_id=row.id, active_holds=len(view.holds))
        return view
