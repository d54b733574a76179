"""The daily digest to IG officers goes through the outbox: once a day, counts only."""

from __future__ import annotations

import datetime as dt

from notify_support import SmtpReceiver, notify_settings
from sqlalchemy import select

from retentiond.notify import deliver_notifications
from retentiond.notify.channels import build_channels
from retentiond.notify.digest import queue_digest
from retentiond.registry.models import AuditEvent, Notification

COUNTS = {"pending_review": 812, "overdue": 40, "failed": 2, "held": 3, "approved": 5,
          "needs_attention": 17, "due": 900, "oldest_pending_days": 61}


def test_digest_is_queued_once_a_day_and_delivered(ctx):
    """Two digests on one date queue one notice; it arrives by email with the counts."""
    smtp = SmtpReceiver().start()
    try:
        channels = build_channels(notify_settings(smtp.settings()))
        today = dt.date(2026, 11, 22)
        first = queue_digest(ctx, channels.settings, as_of=today, counts=COUNTS)
        again = queue_digest(ctx, channels.settings, as_of=today, counts=COUNTS)
        assert first is not None and again is None
        result = deliver_notifications(ctx, channels)
        assert result.delivered == 1
        [msg] = smtp.received.all
        assert msg["To"] == "ig-team@la01.example"
        assert msg["Subject"] == "retentiond digest 2026-11-22: 812 awaiting review, 40 overdue"
        body = msg.get_body(("plain",)).get_content()
        assert "812  awaiting review" in body and "61 days ago" in body
        tomorrow = queue_digest(ctx, channels.settings, as_of=today + dt.timedelta(days=1),
                                counts=COUNTS)
        assert tomorrow is not None and tomorrow != first
    finally:
        smtp.stop()
    with ctx.sessions() as session:
        kinds = [e.kind for e in session.scalars(select(AuditEvent))]
        rows = session.scalars(select(Notification).where(Notification.kind == "ig_digest")).all()
    assert kinds.count("DigestQueued") == 2 and len(rows) == 2


def test_no_ig_email_means_no_digest_notice(ctx):
    """Without [notify].ig_email nothing is queued (the log line and metrics remain)."""
    settings = notify_settings(None, ig_email=None)
    assert queue_digest(ctx, settings, as_of=dt.date(2026, 11, 22), counts=COUNTS) is None
    with ctx.sessions() as session:
        assert session.scalars(select(Notification)).all() == []
