"""The daily digest to IG officers: what awaits their review and what is overdue.

Queued in the outbox (one per London date: its idempotency key is the date), so it is sent,
retried and dead-lettered like every other notice. It carries counts only, never a record's
reference or anything about a subject.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context
from retentiond.notify.settings import NotifySettings
from retentiond.registry.models import Notification

KIND = "ig_digest"

#: The counts the message shows, in order, with their words.
LINES = (
    ("pending_review", "awaiting review"),
    ("overdue", "overdue (due, not disposed of, past the grace period)"),
    ("failed", "failed executions"),
    ("held", "held"),
    ("approved", "approved, awaiting execution"),
    ("needs_attention", "records that can never fall due until a missing fact is supplied"),
    ("notifications_dead", "notices given up (see 'retentiond notifications list --state dead')"),
    ("webhooks_refused", "of which webhooks refused: the address may not be sent to "
                         "(link-local, metadata, private, or http to another host)"),
    ("gone_at_source", "records their source no longer lists (gone at source), to review"),
    ("sources_not_ok", "sources whose latest run was refused or failed"),
)


def queue_digest(ctx: Context, settings: NotifySettings, *, as_of: dt.date,
                 counts: dict[str, Any]) -> int | None:
    """Put today's digest in the outbox; None when there is no ``[notify].ig_email`` or today's
    digest is already there (a second run on the same date sends nothing more)."""
    if not settings.ig_email:
        return None
    key = f"ig-digest:{as_of.isoformat()}"
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        if session.scalar(select(Notification.id).where(Notification.idempotency_key == key)):
            return None
        n = Notification(kind=KIND, controller_id=None, channel="email",
                         target=settings.ig_email, state="pending", attempts=0,
                         next_attempt_at=now, idempotency_key=key,
                         payload={"as_of": as_of.isoformat(), **counts},
                         created_at=now, updated_at=now)
        session.add(n)
        session.flush()
        record_event(session, kind="DigestQueued", actor=ctx.actor, entity="notification",
                     entity_id=n.id, at=now, data={"as_of": as_of.isoformat(), **counts})
        return n.id


def digest_text(payload: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain text of a digest."""
    pending, overdue = payload.get("pending_review", 0), payload.get("overdue", 0)
    lines = [f"retentiond's daily digest for {payload.get('as_of')}.", ""]
    lines += [f"  {payload.get(key, 0):>8,}  {words}" for key, words in LINES]
    if payload.get("oldest_pending_days") is not None:
        lines += ["", f"The oldest case awaiting review fell due {payload['oldest_pending_days']} "
                  "days ago."]
    lines += ["", "Review the queue in the review service, or with:",
              "  retentiond disposals list --state pending_review",
              "", "(sent automatically by retentiond)"]
    subject = f"retentiond digest {payload.get('as_of')}: {pending:,} awaiting review, " \
              f"{overdue:,} overdue"
    return subject, "\n".join(lines) + "\n"
