"""Trigger events pushed by the systems that hold the data (``POST /api/v1/events``).

A case closed, a child who died, an event a rule counts from, a case reopened: each changes
one fact of a record (or of its subject), recomputes what depends on it, withdraws cases whose
basis changed, and is audited, in the caller's transaction. The record's ``facts_digest`` is
left as it was: it stands for the row its source last stated, so an unchanged source row does
not undo the event, and the next changed row from the source states every fact again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.recompute import (
    recompute_records,
    recompute_where,
    register_policy,
    withdraw_stale_cases,
)
from retentiond.registry.models import Record, Subject

EVENTS = ("closed", "died", "event_on", "reopened")


class UnknownRecord(LifecycleError):
    """No record has that id."""


@dataclass(frozen=True, kw_only=True)
class EventApplied:
    """What an event changed."""

    record_id: str
    event: str
    on: dt.date
    #: False when the fact already had that value (nothing was written).
    changed: bool
    due_dates_changed: int
    cases_withdrawn: int

    def as_json(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "event": self.event, "on": self.on.isoformat(),
                "changed": self.changed, "due_dates_changed": self.due_dates_changed,
                "cases_withdrawn": self.cases_withdrawn}


def apply_event(ctx: Context, session: Session, record_key: str, event: str,
                on: dt.date) -> EventApplied:
    """Apply one trigger event inside the caller's transaction; ``LifecycleError`` (nothing
    changed) when it cannot apply: no such record, a date after today, a closure before the
    opening, a death before the birth or a record without a subject."""
    if event not in EVENTS:
        raise LifecycleError(f"event: {event!r} is not one of {', '.join(EVENTS)}")
    if on > ctx.clock.today():
        raise LifecycleError(f"on: {on.isoformat()} is after today: an event is reported once "
                             "it has happened")
    now = ctx.clock.now()
    register_policy(session, ctx.policy, now)
    record = session.scalar(select(Record).where(Record.record_key == record_key)
                            .with_for_update())
    if record is None:
        raise UnknownRecord(f"record_id: no record {record_key!r}")
    subject: Subject | None = None
    if event == "closed":
        if record.opened_on is not None and on < record.opened_on:
            raise LifecycleError(f"on: {on.isoformat()} is before the record was opened")
        before: Any = record.closed_on
        changed = before != on
        record.closed_on = on
    elif event == "reopened":
        before = record.closed_on
        changed = before is not None
        record.closed_on = None
    elif event == "event_on":
        before = record.event_on
        changed = before != on
        record.event_on = on
    else:
        if record.subject_id is None:
            raise LifecycleError("record_id: the record names no subject, so a death cannot be "
                                 "recorded against it")
        subject = session.scalar(select(Subject).where(Subject.id == record.subject_id)
                                 .with_for_update())
        assert subject is not None
        if subject.date_of_birth is not None and on < subject.date_of_birth:
            raise LifecycleError(f"on: {on.isoformat()} is before the subject's date of birth")
        before = subject.date_of_death
        changed = before != on
        subject.date_of_death, subject.updated_at = on, now
    due_changed = withdrawn = 0
    if changed:
        record.updated_at = now
        session.flush()
        due_changed = (recompute_where(ctx, session, Record.subject_id == subject.id)
                       if subject is not None else recompute_records(ctx, session, [record.id]))
        withdrawn = withdraw_stale_cases(ctx, session)
    record_event(session, kind="TriggerEventReceived", actor=ctx.actor, entity="record",
                 entity_id=record_key, at=now, policy_version=ctx.policy.version,
                 data={"event": event, "changed": changed,
                       "due_dates_changed": due_changed, "cases_withdrawn": withdrawn})
    return EventApplied(record_id=record_key, event=event, on=on, changed=changed,
                        due_dates_changed=due_changed, cases_withdrawn=withdrawn)
