"""SQL shared by the lifecycle operations: which holds cover a record, which cases are open.

Kept in one place so that evaluation, review and (later) execution ask the same question.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select

from retentiond.registry.models import Controller, Disposal, Hold, Record, Subject

#: Disposal states after which the record is gone from the holding system.
DONE_STATES = ("executed", "certified", "notified")


def hold_is_active(as_of: dt.date) -> ColumnElement[bool]:
    """A hold is active until lifted, and until the end of its ``until`` date."""
    return and_(Hold.lifted_at.is_(None), or_(Hold.until.is_(None), Hold.until >= as_of))


def hold_covers_record(as_of: dt.date) -> ColumnElement[bool]:
    """True for a row of ``records`` that any active hold covers (correlated EXISTS)."""
    # Explicit correlation: nested inside EXISTS, auto-correlation would give each scalar
    # subquery its own FROM records, and match every hold against an arbitrary record's subject
    # and controller instead of this record's.
    subject_ref = (
        select(Subject.ref).where(Subject.id == Record.subject_id).correlate(Record)
        .scalar_subquery()
    )
    controller_code = (
        select(Controller.code).where(Controller.id == Record.controller_id).correlate(Record)
        .scalar_subquery()
    )
    return exists().where(
        hold_is_active(as_of),
        or_(
            and_(Hold.scope_kind == "record", Hold.scope_value == Record.record_key),
            and_(Hold.scope_kind == "category", Hold.scope_value == Record.category),
            and_(Hold.scope_kind == "subject", Hold.scope_value == subject_ref),
            and_(Hold.scope_kind == "controller", Hold.scope_value == controller_code),
        ),
    )


def no_hold_covers_record(as_of: dt.date) -> ColumnElement[bool]:
    """``NOT hold_covers_record(as_of)``, written as one ``NOT EXISTS`` per scope.

    For set-based queries over many records (evaluate): top-level ``NOT EXISTS`` conditions
    become anti-joins that PostgreSQL hashes, where ``NOT (EXISTS ... OR ...)`` made it probe
    the holds once per due record, at a cost estimate high enough to pay for JIT compilation
    on every evaluation.
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
    )


def has_open_case() -> ColumnElement[bool]:
    """True for a row of ``records`` with a live disposal, or one already carried out."""
    from retentiond.registry.models import OPEN_STATES

    return exists().where(
        Disposal.record_id == Record.id, Disposal.state.in_((*OPEN_STATES, *DONE_STATES))
    )
