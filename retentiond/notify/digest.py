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
    cooling, exceptions = payload.get("cooling_off", 0), payload.get("exceptions", 0)
    if cooling:
        ends = payload.get("cooling_off_ends_in_days")
        first = " It" if cooling == 1 else " The first of them"
        when = "" if ends is None else first + " may be carried out " + (
            "today" if ends == 0 else
            f"on {_date_after(payload.get('as_of'), ends)} (in {_days(ends)})") + "."
        lines += ["", f"{cooling:,} approved {_cases(cooling)} {_are(cooling)} in cooling-off: "
                  f"an IG officer can still cancel {_them(cooling)} back to review.{when}",
                  "  retentiond disposals list --state cooling_off"]
    if exceptions:
        oldest = payload.get("oldest_exception_days")
        since = "" if oldest is None else (
            " The oldest was raised " + ("today" if oldest == 0 else f"{_days(oldest)} ago") + ".")
        lines += ["", f"{exceptions:,} {_cases(exceptions)} raised as "
                  f"{'an exception' if exceptions == 1 else 'exceptions'} by a reviewer "
                  f"{_are(exceptions)} waiting for an IG officer to decide.{since}",
                  "  retentiond disposals list --state exception"]
    lines += ["", "Review the queue in the review service, or with:",
              "  retentiond disposals list --state pending_review",
              "", "(sent automatically by retentiond)"]
    subject = f"retentiond digest {payload.get('as_of')}: {pending:,} awaiting review, " \
              f"{overdue:,} overdue"
    return subject, "\n".join(lines) + "\n"


def _cases(n: int) -> str:
    return "case" if n == 1 else "cases"


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


def _them(n: int) -> str:
    return "it" if n == 1 else "them"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n:,} days"


def _date_after(as_of: Any, days: int) -> str:
    """``as_of`` (an ISO date) plus ``days``, as '4 December 2026'; the days alone if unreadable."""
    try:
        day = dt.date.fromisoformat(str(as_of)) + dt.timedelta(days=days)
    except ValueError:
        return f"{_days(days)} from today"
    return f"{day.day} {day:%B %Y}"
