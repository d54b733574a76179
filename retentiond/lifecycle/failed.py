"""Failed disposals: try again, or send back to review (DESIGN.md section 4).

A case is ``failed`` after a permanent connector error (no connector for its system, a
locator refused) or too many transient ones. Someone fixes the cause, then either:

- **retries** it: ``failed -> approved``, with the approvals it had (refused while a hold
  covers the record). The executor claims it as any approved case, and the claim checks
  holds, the due date, the rule and the action again in the same transaction, so a hold
  placed or a basis changed meanwhile still wins;
- or **sends it back to review**: ``failed -> pending_review``, its approvals voided, so that
  people decide afresh (the locator was wrong, the record should be kept after all).

Each is one transaction for all the cases named, refused whole if any case is refused;
each writes an audit event with the actor, the reason and the error that was cleared.
Doing the same thing twice has the effect of doing it once.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.review import (
    DisposalView,
    _is_held,
    _load,
    _require_reason,
    _view_ids,
)
from retentiond.lifecycle.sql import hold_covers_record, restart_stages
from retentiond.registry.models import Approval, AuditEvent, Disposal

RETRIED = "DisposalRetried"
RETURNED = "DisposalReturnedToReview"


def _last_event(session: Session, case: Disposal) -> str | None:
    return session.scalar(
        select(AuditEvent.kind).where(AuditEvent.entity == "disposal",
                                      AuditEvent.entity_id == str(case.id))
        .order_by(AuditEvent.id.desc()).limit(1))


def _move(ctx: Context, ids: list[int], *, reason: str, to: str, kind: str,
          void_approvals: bool) -> list[DisposalView]:
    reason = _require_reason(reason)
    now, today = ctx.clock.now(), ctx.clock.today()
    with ctx.sessions.begin() as session:
        cases = _load(session, ids)
        covered = hold_covers_record(session, today)
        for case in cases:
            # Already done by an earlier call (a form sent twice): nothing more to do.
            if case.state == to and _last_event(session, case) == kind:
                continue
            if case.state != "failed":
                raise LifecycleError(
                    f"case {case.id} is {case.state.replace('_', ' ')}: only a failed case "
                    f"can be {'retried' if to == 'approved' else 'sent back to review'}")
            # Holds win: an approved case under a hold would only wait to be held at its
            # claim; say so now, while the person is here to lift the hold or choose review.
            if to == "approved" and _is_held(session, case.record_id, covered):
                raise LifecycleError(f"case {case.id}: the record is under a hold: lift the "
                                     "hold first, or send the case back to review")
            cleared = case.last_error
            case.state, case.updated_at = to, now
            # A fresh start: the backoff and the count of attempts belong to the cause that
            # was just fixed, and would otherwise fail the case again after one transient error.
            case.attempts, case.next_attempt_at, case.last_error = 0, None, None
            case.lease_owner = case.lease_until = None
            case.reason = reason
            if void_approvals:
                session.execute(update(Approval)
                                .where(Approval.disposal_id == case.id,
                                       Approval.voided_at.is_(None))
                                .values(voided_at=now))
                restart_stages(session, [case.id])
            record_event(session, kind=kind, actor=ctx.actor, entity="disposal",
                         entity_id=case.id, at=now, reason=reason,
                         policy_version=ctx.policy.version,
                         data={"previous_error": (cleared or "")[:500]})
        session.flush()
        return _view_ids(session, cases)


def retry(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """Put failed cases back to ``approved`` (after their cause is fixed); the executor
    re-checks holds and the due date when it claims them."""
    return _move(ctx, ids, reason=reason, to="approved", kind=RETRIED, void_approvals=False)


def return_to_review(ctx: Context, ids: list[int], *, reason: str) -> list[DisposalView]:
    """Send failed cases back to ``pending_review``; their approvals no longer count."""
    return _move(ctx, ids, reason=reason, to="pending_review", kind=RETURNED,
                 void_approvals=True)
