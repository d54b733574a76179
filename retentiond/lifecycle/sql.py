"""SQL shared by the lifecycle operations: which holds cover a record, which cases are open.

Kept in one place so that evaluation, review and (later) execution ask the same question.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    any_,
    case,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from retentiond.lifecycle.filters import controller_ids, parse_criteria, record_condition
from retentiond.registry.models import (
    Approval,
    Controller,
    Disposal,
    DisposalStage,
    Hold,
    Record,
    Subject,
)

#: Disposal states after which the record is gone from the holding system.
DONE_STATES = ("executed", "certified", "notified")


def among(session: Session, column: Any, ids: Collection[int]) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: on PostgreSQL ``= ANY`` of one array parameter (one bind
    however many ids: psycopg parses a statement's text on every call when it is too long to
    cache, and an ``IN`` list of 1,000 placeholders cost more than the query), elsewhere an
    ``IN`` list."""
    if session.get_bind().dialect.name == "postgresql":
        condition: ColumnElement[bool] = column == any_(literal(list(ids), ARRAY(BigInteger)))
        return condition
    listed: ColumnElement[bool] = column.in_(list(ids))
    return listed


def hold_is_active(as_of: dt.date) -> ColumnElement[bool]:
    """A hold is active until lifted, and until the end of its ``until`` date."""
    return and_(Hold.lifted_at.is_(None), or_(Hold.until.is_(None), Hold.until >= as_of))


def filter_hold_conditions(session: Session, as_of: dt.date) -> list[ColumnElement[bool]]:
    """One condition on ``records`` per active ``filter`` hold: the criteria copied into it.

    Loaded first (there are few such holds), with controller codes resolved to ids, so each
    becomes a plain condition on the records table rather than a JSON lookup per record.
    """
    stored = list(session.scalars(
        select(Hold.criteria).where(Hold.scope_kind == "filter", hold_is_active(as_of))
        .order_by(Hold.id)))
    criteria = [parse_criteria(c or {}) for c in stored]
    ids = controller_ids(session, criteria)
    return [record_condition(c, ids.get(c.controller, -1) if c.controller else None)
            for c in criteria]


def hold_covers_record(session: Session, as_of: dt.date) -> ColumnElement[bool]:
    """True for a row of ``records`` that any active hold covers (correlated EXISTS for the
    fixed scopes, one condition per active filter hold, read in ``session`` now).

    Written as ``NOT`` of :func:`no_hold_covers_record`: one ``EXISTS`` per scope, each an
    index probe of ``ix_holds_scope``. One ``EXISTS`` over the four scopes' ``OR`` (the form
    before issue 14) made PostgreSQL read every active hold for every case checked: 1.6 s a
    batch of 1,000 at execution with 4,500 holds."""
    return not_(no_hold_covers_record(session, as_of))


def no_hold_covers_record(session: Session, as_of: dt.date) -> ColumnElement[bool]:
    """``NOT hold_covers_record(session, as_of)``, written as one ``NOT EXISTS`` per fixed
    scope and one ``NOT (...)`` per active filter hold.

    For set-based queries over many records (evaluate): top-level ``NOT EXISTS`` conditions
    become anti-joins that PostgreSQL hashes, where ``NOT (EXISTS ... OR ...)`` made it probe
    the holds once per due record, at a cost estimate high enough to pay for JIT compilation
    on every evaluation. A filter hold's condition is on the record's own columns, so its
    ``NOT`` is a plain filter that leaves those anti-joins as they were.
    """
    def uncovered(kind: str, value: Any, *join: ColumnElement[bool]) -> ColumnElement[bool]:
        return ~exists().where(
            Hold.scope_kind == kind, Hold.scope_value == value, hold_is_active(as_of), *join
        ).correlate(Record)

    return and_(
        uncovered("record", Record.record_key),
        uncovered("category", Record.category),
        uncovered("subject", Subject.ref, Subject.id == Record.subject_id),
        uncovered("controller", Controller.code, Controller.id == Record.controller_id),
        *[not_(c) for c in filter_hold_conditions(session, as_of)],
    )


def move_cases(session: Session, ids: Collection[int], *, expected: Collection[str], state: str,
               **values: Any) -> list[int]:
    """Move the cases ``ids`` that are still in one of the ``expected`` states to ``state``
    (with ``values``, e.g. ``updated_at``); return the ids moved, in id order.

    Every lifecycle transition goes through here: the state it expects is part of the
    ``UPDATE``, so a case another transaction moved meanwhile (a hold placed, an approval
    completed, a claim by the executor) is not matched, and the caller refuses or skips it
    instead of overwriting what the other one did.
    """
    if not ids:
        return []
    moved = session.scalars(
        update(Disposal)
        .where(Disposal.id.in_(list(ids)), Disposal.state.in_(list(expected)))
        .values(state=state, **values)
        .returning(Disposal.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    return sorted(moved)


def short_of_approvers(session: Session, ids: Collection[int]) -> dict[int, str]:
    """The cases among ``ids`` approved by fewer different people than their rule needs
    (counting live approvals only), with why: what the executor refuses to carry out, however
    the case came to be ``approved`` (DESIGN.md section 6)."""
    if not ids:
        return {}
    people = (select(func.count(func.distinct(Approval.approver)))
              .where(Approval.disposal_id == Disposal.id, Approval.voided_at.is_(None))
              .correlate(Disposal).scalar_subquery())
    # A staged case needs one different person per stage, whatever its count says.
    stages = (select(func.count()).select_from(DisposalStage)
              .where(DisposalStage.disposal_id == Disposal.id)
              .correlate(Disposal).scalar_subquery())
    need = case((Disposal.stage.is_not(None), stages), else_=Disposal.approvals_required)
    rows = session.execute(
        select(Disposal.id, people, need)
        .where(among(session, Disposal.id, ids), people < need)).all()
    return {i: f"approved by {n} of the {need} different people its rule needs: it goes back "
               "to review" for i, n, need in rows}


def has_open_case() -> ColumnElement[bool]:
    """True for a row of ``records`` with a live disposal, or one already carried out."""
    from retentiond.registry.models import OPEN_STATES

    return exists().where(
        Disposal.record_id == Record.id, Disposal.state.in_((*OPEN_STATES, *DONE_STATES))
    )


def restart_stages(session: Session, ids: Collection[int]) -> None:
    """Staged cases among ``ids`` wait for their first stage again (their approvals were just
    voided: a hold, a return to review, an exception sent on, a cancelled cooling-off)."""
    if not ids:
        return
    first = (select(DisposalStage.group_name)
             .where(DisposalStage.disposal_id == Disposal.id, DisposalStage.position == 0)
             .correlate(Disposal).scalar_subquery())
    session.execute(
        update(Disposal)
        .where(Disposal.id.in_(list(ids)), Disposal.stage.is_not(None))
        .values(stage=0, stage_group=first)
        .execution_options(synchronize_session="fetch"))
