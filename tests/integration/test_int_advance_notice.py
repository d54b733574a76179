"""Advance notice of disposals: one notice per batch of newly due records, never a daily
repeat; held records are not announced; delivered by email without personal data."""

from __future__ import annotations

import datetime as dt

import pytest
from cert_support import ISSUER
from conftest import TODAY
from int_support import audit_counts, load_records, pupil, seed_controllers
from notify_support import SmtpReceiver, notify_settings
from sqlalchemy import select

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.holds import place_hold
from retentiond.notify import deliver_notifications
from retentiond.notify.advance import send_advance_notices, set_notice
from retentiond.notify.channels import build_channels
from retentiond.registry import models as m


def _dob_due_in(days: int) -> dt.date:
    """A date of birth whose 25th birthday is ``days`` after TODAY."""
    due = TODAY + dt.timedelta(days=days)
    return due.replace(year=due.year - 25)


@pytest.fixture
def registry(ctx, tmp_path):
    """SCH-01 wants 30 days' notice; it has records due in 5, 20 and 60 days."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        pupil("PUP-105", _dob_due_in(5)), pupil("PUP-120", _dob_due_in(20)),
        pupil("PUP-160", _dob_due_in(60)),
        pupil("OTHER-1", _dob_due_in(5), controller="SCH-02"),
    ])
    set_notice(ctx, "SCH-01", days=30)
    return ctx


def _announced(notice) -> list[str]:
    return [r["record"] for r in notice.document["records"]]


def _notices(ctx) -> list[m.AdvanceNotice]:
    with ctx.sessions() as session:
        return list(session.scalars(select(m.AdvanceNotice).order_by(m.AdvanceNotice.id)))


def test_one_notice_for_the_records_in_the_window(registry):
    """Only the controller that asked, only records due within its window."""
    [view] = send_advance_notices(registry, issuer=ISSUER)
    assert (view.controller, view.records, view.window_days, view.notifications) == ("SCH-01", 2, 30, 1)
    [notice] = _notices(registry)
    assert _announced(notice) == ["PUP-105", "PUP-120"]
    assert audit_counts(registry)["AdvanceNoticeQueued"] == 1


def test_never_a_daily_repeat(registry, tmp_path):
    """Running again the same day and the next days sends nothing until a new record falls
    within the window; then the notice lists only the new ones."""
    from int_support import at

    send_advance_notices(registry, issuer=ISSUER)
    assert send_advance_notices(registry, issuer=ISSUER) == []
    for n in (1, 2, 3):
        assert send_advance_notices(at(registry, TODAY + dt.timedelta(days=n)), issuer=ISSUER) == []
    later = at(registry, TODAY + dt.timedelta(days=31))  # PUP-160 is now 29 days away
    [view] = send_advance_notices(later, issuer=ISSUER)
    assert _announced(_notices(registry)[-1]) == ["PUP-160"]
    load_records(registry, tmp_path, [pupil("PUP-140", _dob_due_in(40))])
    [view] = send_advance_notices(later, issuer=ISSUER)
    assert _announced(_notices(registry)[-1]) == ["PUP-140"] and view.records == 1


def test_held_records_are_not_announced(registry):
    """A record under a hold will not be disposed of: it is not announced."""
    place_hold(registry, scope="record:PUP-105", hold_type="legal", reason="litigation")
    send_advance_notices(registry, issuer=ISSUER)
    assert _announced(_notices(registry)[0]) == ["PUP-120"]


def test_settings_are_checked_and_can_be_turned_off(registry):
    """Days must be sensible; off means no notice."""
    with pytest.raises(LifecycleError, match="--days"):
        set_notice(registry, "SCH-01", days=0)
    with pytest.raises(LifecycleError, match="no controller"):
        set_notice(registry, "NOPE", days=10)
    set_notice(registry, "SCH-01", days=None)
    assert send_advance_notices(registry, issuer=ISSUER) == []


def test_notice_email_lists_records_without_personal_data(registry):
    """The email lists reference, category, due date and action; no subject or birth date."""
    send_advance_notices(registry, issuer=ISSUER)
    smtp = SmtpReceiver().start()
    try:
        result = deliver_notifications(registry, build_channels(notify_settings(smtp.settings())))
    finally:
        smtp.stop()
    assert result.delivered == 1
    [msg] = smtp.received.all
    text = msg.get_body(("plain",)).get_content()
    assert msg["To"] == "dpo@sch01.example"
    assert "PUP-105" in text and "PUP-120" in text and "PUP-160" not in text
    assert "30 days' notice" in text
    for personal in ("S-PUP-105", _dob_due_in(5).isoformat()):
        assert personal not in text
