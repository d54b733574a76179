"""The end of a cooling-off wait: ``cooling_off`` cases whose ``cooling_until`` has passed
become ``approved`` (execution may claim them), or ``held`` if a hold covers them now.

Run before every claim (``lifecycle/execute.py`` ``execute_due``: the daemon's execute job and
``retentiond execute``). Guarded: a case an IG officer cancelled, or a hold moved, in the
meantime is not matched, and is left as the other transaction left it.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from retentiond.lifecycle.context import Context
from retentiond.lifecycle.sql import hold_covers_record, move_cases, restart_stages
from retentiond.registry.chain import note_inserted
from retentiond.registry.db import write_transaction
from retentiond.registry.models import Approval, AuditEvent, Disposal, Record

ENDED = "CoolingOffEnded"
HELD_REASON = ("the cooling-off period ended while a hold covers the record: held, its "
               "approvals no longer count")


def end_cooling(ctx: Context, *, limit: int = 5000) -> dict[str, int]:
    """Move cases whose cooling-off has ended on; return how many went to ``approved`` and to
    ``held``."""
    now, today = ctx.clock.now(), ctx.clock.today()
    approved = held = 0
    # Looked for first without the write lock (SQLite) or a transaction that writes: before
    # every claim, and nearly always there is nothing to do.
    with ctx.sessions() as session:
        if session.scalar(select(Disposal.id).where(Disposal.state == "cooling_off",
                                                    Disposal.cooling_until <= now)
                          .limit(1)) is None:
            return {"cooling_ended": 0, "cooling_held": 0}
    with write_transaction(ctx.sessions) as session:
        ended = list(session.scalars(
            select(Disposal.id).where(Disposal.state == "cooling_off",
                                      Disposal.cooling_until <= now)
            .order_by(Disposal.id).limit(limit)))
        if not ended:
            return {"cooling_ended": 0, "cooling_held": 0}
        covered = set(session.scalars(
            select(Disposal.id).join(Record, Record.id == Disposal.record_id)
            .where(Disposal.id.in_(ended), hold_covers_record(session, today))))
        to_hold = [i for i in ended if i in covered]
        to_approve = [i for i in ended if i not in covered]
        done_held = move_cases(session, to_hold, expected=("cooling_off",), state="held",
                               updated_at=now, reason=HELD_REASON, cooling_until=None)
        if done_held:
            session.execute(update(Approval)
                            .where(Approval.disposal_id.in_(done_held),
                                   Approval.voided_at.is_(None))
                            .values(voided_at=now))
            restart_stages(session, done_held)
        done = move_cases(session, to_approve, expected=("cooling_off",), state="approved",
                          updated_at=now, cooling_until=None)
        events = [
            {"occurred_at": now, "kind": ENDED, "actor": "retentiond", "entity": "disposal",
             "entity_id": str(i), "reason": "the cooling-off period ended",
             "policy_version": ctx.policy.version, "data": {"now": "approved"}}
            for i in done
        ] + [
            {"occurred_at": now, "kind": "DisposalHeld", "actor": "retentiond",
             "entity": "disposal", "entity_id": str(i), "reason": HELD_REASON,
             "policy_version": ctx.policy.version, "data": {"cooling_off_ended": True}}
            for i in done_held
        ]
        if events:
            note_inserted(session, session.scalars(
                insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True),
                events))
        approved, held = len(done), len(done_held)
    return {"cooling_ended": approved, "cooling_held": held}
