"""Manual disposal tasks: paper, systems with no interface, and the action ``review``.

The executor opens a task (the case moves to ``pending_confirmation``); a person carries
out the destruction; an IG officer confirms it with evidence (who destroyed it, on which date,
by what method, the contractor's certificate number). Only then is the case ``executed``.
A hold placed meanwhile moves the case to ``held`` and so cancels the task.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from retentiond.audit import record_event
from retentiond.clock import LONDON
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.sql import hold_covers_record, move_cases
from retentiond.registry.db import write_transaction
from retentiond.registry.models import Controller, Disposal, DisposalExecution, Record


@dataclass(frozen=True, kw_only=True)
class TaskView:
    """An open manual task, or a confirmed one."""

    disposal_id: int
    record_id: str
    category: str
    controller: str
    action: str
    system: str | None
    locator: str | None
    connector: str | None
    due_on: dt.date
    task_created_at: dt.datetime | None
    state: str
    destroyed_by: str | None = None
    destroyed_on: dt.date | None = None
    method: str | None = None
    certificate_no: str | None = None
    confirmed_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "disposal_id": self.disposal_id, "record_id": self.record_id,
            "category": self.category, "controller": self.controller, "action": self.action,
            "system": self.system, "locator": self.locator, "connector": self.connector,
            "due_on": self.due_on.isoformat(),
            "task_created_at": self.task_created_at.isoformat() if self.task_created_at else None,
            "state": self.state, "destroyed_by": self.destroyed_by,
            "destroyed_on": self.destroyed_on.isoformat() if self.destroyed_on else None,
            "method": self.method, "certificate_no": self.certificate_no,
            "confirmed_by": self.confirmed_by,
        }


def _query() -> Any:
    return (
        select(Disposal, Record, Controller.code, DisposalExecution)
        .join(Record, Record.id == Disposal.record_id)
        .join(Controller, Controller.id == Record.controller_id)
        .outerjoin(DisposalExecution, DisposalExecution.disposal_id == Disposal.id)
    )


def _view(case: Disposal, record: Record, controller: str,
          row: DisposalExecution | None) -> TaskView:
    return TaskView(
        disposal_id=case.id, record_id=record.record_key, category=record.category,
        controller=controller, action=case.action, system=record.system,
        locator=record.locator, connector=row.connector if row else None, due_on=case.due_on,
        task_created_at=row.task_created_at if row else None, state=case.state,
        destroyed_by=row.destroyed_by if row else None,
        destroyed_on=row.destroyed_on if row else None,
        method=row.destruction_method if row else None,
        certificate_no=row.certificate_no if row else None,
        confirmed_by=row.confirmed_by if row else None,
    )


def list_tasks(ctx: Context) -> list[TaskView]:
    """Cases waiting for a person to destroy the record and an officer to confirm it."""
    with ctx.sessions() as session:
        rows = session.execute(
            _query().where(Disposal.state == "pending_confirmation").order_by(Disposal.id)
        ).all()
        return [_view(*r) for r in rows]


def confirm_destruction(ctx: Context, disposal_id: int, *, destroyed_by: str,
                        destroyed_on: dt.date, method: str,
                        certificate_no: str | None = None) -> TaskView:
    """Record the evidence of destruction; the case becomes ``executed``. Confirming again
    with the same evidence changes nothing; with different evidence it is refused."""
    destroyed_by = required_text(destroyed_by, "--destroyed-by is required: who destroyed the record")
    method = required_text(method, "--method is required: how the record was destroyed")
    certificate_no = (certificate_no or "").strip() or None
    if certificate_no is not None:
        certificate_no = required_text(certificate_no, "--certificate-no, when given, says "
                                                       "the certificate's number")
    now, today = ctx.clock.now(), ctx.clock.today()
    if destroyed_on > today:
        raise LifecycleError(f"--destroyed-on {destroyed_on} is in the future")
    with write_transaction(ctx.sessions) as session:
        found = session.execute(
            _query().where(Disposal.id == disposal_id).with_for_update(of=Disposal)
        ).one_or_none()
        if found is None:
            raise LifecycleError(f"no disposal {disposal_id}")
        case, record, controller, row = found
        evidence = (destroyed_by, destroyed_on, method, certificate_no)
        if case.state == "executed" and row is not None and (
                row.destroyed_by, row.destroyed_on, row.destruction_method,
                row.certificate_no) == evidence:
            return _view(case, record, controller, row)
        if case.state != "pending_confirmation" or row is None:
            raise LifecycleError(f"disposal {disposal_id} is {case.state}: only a case pending "
                                 "confirmation can be confirmed")
        if session.scalar(select(Record.id).where(Record.id == record.id,
                                                  hold_covers_record(session, today))) is not None:
            raise LifecycleError(f"disposal {disposal_id}: the record is under a hold: it must "
                                 "not be destroyed")
        if destroyed_on < case.due_on:
            raise LifecycleError(
                f"--destroyed-on {destroyed_on} is before the record's due date {case.due_on}: "
                "that is not a disposal to confirm but an incident to report"
            )
        if row.task_created_at is not None and \
                destroyed_on < row.task_created_at.astimezone(LONDON).date():
            raise LifecycleError(
                f"--destroyed-on {destroyed_on} is before the task was opened "
                f"({row.task_created_at.astimezone(LONDON).date()}): destruction without the "
                "approved task is an incident to report"
            )
        row.destroyed_by, row.destroyed_on, row.destruction_method = destroyed_by, destroyed_on, method
        row.certificate_no, row.confirmed_by, row.confirmed_at = certificate_no, ctx.actor, now
        row.method = f"destroyed by {destroyed_by} on {destroyed_on.isoformat()}: {method}" + (
            f" (certificate {certificate_no})" if certificate_no else "")
        row.verification = f"confirmed by {ctx.actor} with evidence of destruction"
        row.executed_at = row.updated_at = now
        if not move_cases(session, [case.id], expected=("pending_confirmation",),
                          state="executed", updated_at=now):
            raise LifecycleError(f"disposal {disposal_id} changed while its destruction was "
                                 "being confirmed: nothing was changed; look at it again")
        record_event(session, kind="DisposalExecuted", actor=ctx.actor, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason="destruction confirmed with evidence",
                     data={"system": record.system, "connector": row.connector,
                           "connector_kind": row.connector_kind, "action": case.action,
                           "method": row.method, "verification": row.verification,
                           "destroyed_by": destroyed_by, "destroyed_on": destroyed_on.isoformat(),
                           "destruction_method": method, "certificate_no": certificate_no})
        session.flush()
        return _view(case, record, controller, row)
