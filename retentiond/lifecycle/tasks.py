"""Tasks for a person: manual disposals, the action ``review``, and data not found.

The executor opens a task (the case moves to ``pending_confirmation``) of one of three kinds:

- ``manual`` (paper, systems with no interface) and ``review`` (the rule's action): a person
  carries out the destruction and an IG officer confirms it with evidence (who destroyed it, on
  which date, by what method, the contractor's certificate number): :func:`confirm_destruction`.
- ``not_found``: the record's data was not in its holding system on the first attempt (a
  mistyped or stale locator, or data destroyed earlier by someone else). It is a finding, not
  a deletion (DESIGN.md section 4). A person either confirms, in their own words, what
  happened to it (:func:`confirm_not_found`: "destroyed earlier by ...", checked again to be
  absent, and certified as ``confirmed_not_found`` with those words, never "deleted"), or
  sends the case back to review (:func:`send_back`) once the locator is corrected.

Only then is the case ``executed``. A hold placed meanwhile moves the case to ``held`` and so
cancels the task.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, not_, select, update

from retentiond.audit import record_event
from retentiond.clock import LONDON
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.lifecycle.sql import hold_covers_record, move_cases
from retentiond.registry.db import write_transaction
from retentiond.registry.models import Approval, Controller, Disposal, DisposalExecution, Record
from retentiond.text import is_visible

if TYPE_CHECKING:
    from retentiond.connectors import ConnectorRegistry

#: The fewest visible characters a person's evidence may have ("destroyed earlier by ...").
MIN_EVIDENCE = 10
MAX_EVIDENCE = 2000


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
    #: ``manual``, ``review`` or ``not_found``.
    kind: str = "manual"
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "reason": self.reason,
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


def task_kind(case: Disposal, row: DisposalExecution | None) -> str:
    """What a person is asked to do for a case pending confirmation."""
    if row is not None and row.not_found_at is not None:
        return "not_found"
    return "review" if case.action == "review" else "manual"


def _view(case: Disposal, record: Record, controller: str,
          row: DisposalExecution | None) -> TaskView:
    return TaskView(
        kind=task_kind(case, row), reason=case.reason if case.state == "pending_confirmation"
        else None,
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


#: The kinds of task, in the order a person is shown them.
TASK_KINDS = ("not_found", "manual", "review")


def _kind_is(kind: str) -> Any:
    """SQL for ``task_kind(case, row) == kind``."""
    if kind == "not_found":
        return DisposalExecution.not_found_at.is_not(None)
    if kind not in TASK_KINDS:
        raise LifecycleError(f"no kind of task {kind!r} (one of: {', '.join(TASK_KINDS)})")
    action = Disposal.action == "review"
    return and_(DisposalExecution.not_found_at.is_(None), action if kind == "review"
                else not_(action))


def list_tasks(ctx: Context, *, kind: str | None = None,
               limit: int | None = None) -> list[TaskView]:
    """Cases waiting for a person to destroy the record and an officer to confirm it (or, for
    data not found, to say what happened to it), oldest case first; ``kind`` keeps one kind,
    ``limit`` the first so many."""
    query = _query().where(Disposal.state == "pending_confirmation")
    if kind is not None:
        query = query.where(_kind_is(kind))
    query = query.order_by(Disposal.id)
    if limit is not None:
        query = query.limit(limit)
    with ctx.sessions() as session:
        return [_view(*r) for r in session.execute(query).all()]


def count_tasks(ctx: Context) -> dict[str, int]:
    """Open tasks by kind (every kind named, zero or not)."""
    counts = dict.fromkeys(TASK_KINDS, 0)
    with ctx.sessions() as session:
        for kind in TASK_KINDS:
            counts[kind] = session.scalar(
                select(func.count()).select_from(Disposal)
                .outerjoin(DisposalExecution, DisposalExecution.disposal_id == Disposal.id)
                .where(Disposal.state == "pending_confirmation", _kind_is(kind))) or 0
    return counts


def get_task(ctx: Context, disposal_id: int) -> TaskView | None:
    """The open task of case ``disposal_id``; None when it is not pending confirmation."""
    with ctx.sessions() as session:
        found = session.execute(_query().where(Disposal.id == disposal_id,
                                               Disposal.state == "pending_confirmation")
                                ).one_or_none()
        return None if found is None else _view(*found)


def _held_refusal(disposal_id: int) -> LifecycleError:
    return LifecycleError(f"disposal {disposal_id} is held: a hold covers the record, so "
                          "nothing may be confirmed or sent back until the hold is lifted")


def confirm_destruction(ctx: Context, disposal_id: int, *, destroyed_by: str,
                        destroyed_on: dt.date, method: str,
                        certificate_no: str | None = None,
                        connectors: ConnectorRegistry | None = None) -> TaskView:
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
        if case.state == "held":
            raise _held_refusal(disposal_id)
        if case.state != "pending_confirmation" or row is None:
            raise LifecycleError(f"disposal {disposal_id} is {case.state}: only a case pending "
                                 "confirmation can be confirmed")
        if task_kind(case, row) == "not_found":
            raise LifecycleError(
                f"disposal {disposal_id}: its data was not found in {record.system}, so nothing "
                "was destroyed by this task: confirm what happened to it with --evidence, or "
                "send it back for review (disposals send-back) once its locator is corrected")
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
        row.outcome = "destroyed_by_hand"
        row.remaining = _remaining(connectors, record.system, destroyed_on)
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


def _remaining(connectors: ConnectorRegistry | None, system: str | None,
               on: dt.date) -> list[dict[str, Any]]:
    """What the record's system keeps after the destruction (its connector's statement; an
    undeclared statement when no connector is at hand)."""
    from retentiond.connectors import UNDECLARED, ConnectorError, remaining_copies

    if connectors is not None and system:
        try:
            return [c.as_json() for c in remaining_copies(connectors.for_system(system), on)]
        except ConnectorError:
            pass
    return [UNDECLARED.as_json()]


def _evidence_text(value: str, what: str, *, minimum: int = 1,
                   maximum: int = MAX_EVIDENCE) -> str:
    """``value`` stripped, refused when it has fewer than ``minimum`` characters a reader
    sees (``retentiond.text.is_visible``: zero-width, format and blank characters do not
    count), more than ``maximum``, or a control character (a line break is allowed)."""
    text = value.strip()
    if len(text) > maximum:
        raise LifecycleError(f"{what} is longer than {maximum} characters")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in text):
        raise LifecycleError(f"{what} contains a control character")
    if sum(1 for c in text if is_visible(c)) < minimum:
        raise LifecycleError(f"{what} is required: at least {minimum} visible characters")
    return text


def _not_found_case(session: Any, disposal_id: int) -> tuple[Disposal, Record, str,
                                                              DisposalExecution]:
    found = session.execute(
        _query().where(Disposal.id == disposal_id).with_for_update(of=Disposal)).one_or_none()
    if found is None:
        raise LifecycleError(f"no disposal {disposal_id}")
    case, record, controller, row = found
    if case.state == "held":
        raise _held_refusal(disposal_id)
    if case.state != "pending_confirmation" or row is None or row.not_found_at is None:
        raise LifecycleError(f"disposal {disposal_id} is not a finding of data not found (it is "
                             f"{case.state})")
    return case, record, controller, row


def confirm_not_found(ctx: Context, disposal_id: int, *, evidence: str,
                      connectors: ConnectorRegistry) -> TaskView:
    """A person confirms, in their own words, what became of data not found on the first
    attempt ("destroyed earlier by the school's MIS clean-up on ..."). The holding system is
    asked once more: data found now is refused (the locator names present data: send the case
    back instead). The case becomes ``executed`` with the outcome ``confirmed_not_found`` and
    the person's words as its note; a certificate says that, never "deleted". Confirming
    again with the same words changes nothing."""
    from retentiond.connectors import ConnectorError, ConnectorRef

    evidence = _evidence_text(evidence, "--evidence", minimum=MIN_EVIDENCE)
    with ctx.sessions() as session:
        found = session.execute(_query().where(Disposal.id == disposal_id)).one_or_none()
        if found is None:
            raise LifecycleError(f"no disposal {disposal_id}")
        case, record, controller, row = found
        if case.state == "executed" and row is not None and row.outcome == "confirmed_not_found" \
                and row.outcome_note == evidence:
            return _view(case, record, controller, row)
        _not_found_case(session, disposal_id)
        system, locator, key = record.system, record.locator, record.record_key
    try:
        connector = connectors.for_system(system)
        present = bool(locator) and connector.exists(ConnectorRef(str(system), str(locator), key,
                                                                  controller=controller))
    except ConnectorError as exc:
        raise LifecycleError(f"disposal {disposal_id}: cannot check {system} again: {exc}") \
            from exc
    if present:
        raise LifecycleError(
            f"disposal {disposal_id}: the data is in {system} now: it was not destroyed earlier; "
            "send the case back for review (disposals send-back) instead")
    now, today = ctx.clock.now(), ctx.clock.today()
    with write_transaction(ctx.sessions) as session:
        case, record, controller, row = _not_found_case(session, disposal_id)
        if record.system != system or record.locator != locator:
            raise LifecycleError(f"disposal {disposal_id}: the record's locator changed while "
                                 "it was checked: try again")
        if session.scalar(select(Record.id).where(Record.id == record.id,
                                                  hold_covers_record(session, today))) is not None:
            raise LifecycleError(f"disposal {disposal_id}: the record is under a hold")
        since = row.not_found_at.astimezone(LONDON).date() if row.not_found_at else today
        row.outcome, row.outcome_note = "confirmed_not_found", evidence
        row.method = f"not found in {system}; a person confirmed what happened to it: {evidence}"
        row.verification = (f"{connector.name}.exists() was false on the first attempt "
                            f"({since.isoformat()}) and again when {ctx.actor} confirmed it")
        row.confirmed_by, row.confirmed_at = ctx.actor, now
        row.executed_at = row.updated_at = now
        row.remaining = _remaining(connectors, system, today)
        if not move_cases(session, [case.id], expected=("pending_confirmation",),
                          state="executed", updated_at=now):
            raise LifecycleError(f"disposal {disposal_id} changed while it was being "
                                 "confirmed: nothing was changed; look at it again")
        record_event(session, kind="DisposalNotFoundConfirmed", actor=ctx.actor,
                     entity="disposal", entity_id=case.id, at=now,
                     policy_version=ctx.policy.version, reason=evidence,
                     data={"system": system, "connector": connector.name,
                           "outcome": row.outcome, "verification": row.verification})
        session.flush()
        return _view(case, record, controller, row)


def send_back(ctx: Context, disposal_id: int, *, reason: str) -> TaskView:
    """Data not found: send the case back to ``pending_review`` (after its locator has been
    corrected, by ``records import``). Its approvals are voided, since they were given for a
    locator that named nothing; the next attempt is a first attempt again."""
    reason = _evidence_text(reason, "--reason")
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        case, record, controller, row = _not_found_case(session, disposal_id)
        session.execute(update(Approval)
                        .where(Approval.disposal_id == case.id, Approval.voided_at.is_(None))
                        .values(voided_at=now))
        row.not_found_at = row.task_created_at = row.action_sent_at = None
        row.updated_at = now
        if not move_cases(session, [case.id], expected=("pending_confirmation",),
                          state="pending_review", reason=reason, updated_at=now, attempts=0,
                          last_error=None):
            raise LifecycleError(f"disposal {disposal_id} changed while it was being sent "
                                 "back: nothing was changed; look at it again")
        record_event(session, kind="DisposalSentBack", actor=ctx.actor, entity="disposal",
                     entity_id=case.id, at=now, policy_version=ctx.policy.version,
                     reason=reason, data={"from": "not_found", "system": record.system})
        session.flush()
        return _view(case, record, controller, row)
