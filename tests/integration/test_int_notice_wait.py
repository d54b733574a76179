"""A controller's advance-notice period is a wait (issue 10, class 7): nothing of theirs is
carried out until an advance notice naming the case was delivered (outbox state delivered,
not merely queued) at least that many days earlier. Checked through whole daemon passes
(``run --once``) with a real SMTP server and a real folder of case files."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from conftest import DEFAULT_PACK, TODAY
from execution_support import make_files, queue_and_approve, seed, states
from notify_support import SmtpReceiver
from sqlalchemy import select, update

from retentiond.clock import FixedClock
from retentiond.config import Config
from retentiond.daemon.service import Service
from retentiond.lifecycle.execute import execute_due
from retentiond.notify.advance import set_notice
from retentiond.registry import models as m

NOON = dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def smtp():
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


def _config(database_url: str, root: Path, smtp: SmtpReceiver) -> Config:
    return Config(source=None, database_url=database_url, actor="retentiond:scheduler",
                  policy_paths=[str(DEFAULT_PACK)],
                  raw={"daemon": {"heartbeat_s": 0.1, "stop_timeout_s": 30},
                       "metrics": {"listen": ""},
                       "certificates": {"issuer": "Synthetic Borough Council",
                                        "key_dir": str(root.parent / "no-keys")},
                       "notify": {"from": "retentiond@la01.example",
                                  "smtp": {"host": "127.0.0.1", "port": smtp.port,
                                           "security": "none", "timeout_s": 5}},
                       "connectors": {"casefiles": {"kind": "filesystem", "systems": ["files"],
                                                    "root": str(root)}}})


def _pass(cfg: Config, at: dt.datetime) -> None:
    assert Service(cfg, clock=FixedClock(at)).run_once(out=lambda _line: None) in (0, 1)


def test_a_notice_period_holds_execution_until_delivery_plus_the_period(ctx, database_url,
                                                                          tmp_path, smtp):
    """Notice 30 days; records due and approved. The first daemon pass queues and delivers
    the notice but disposes of nothing of SCH-01 (SCH-02, which asked for no notice, is
    disposed of); 29 days after delivery still nothing; 30 days after, they are."""
    root = tmp_path / "files"
    make_files(root, ["c1", "c2", "c3"])
    seed(ctx, tmp_path, [
        {"record_id": "R-1", "system": "files", "locator": "c1", "date_of_birth": "2000-01-01"},
        {"record_id": "R-2", "system": "files", "locator": "c2", "date_of_birth": "2000-01-01"},
        {"record_id": "R-3", "system": "files", "locator": "c3", "date_of_birth": "2000-01-01",
         "controller": "SCH-02"},
    ])
    set_notice(ctx, "SCH-01", days=30, channels=["email"])
    queue_and_approve(ctx)
    cfg = _config(database_url, root, smtp)

    _pass(cfg, NOON)
    assert states(ctx) == {"R-1": "approved", "R-2": "approved", "R-3": "executed"}
    assert (root / "c1").is_dir() and (root / "c2").is_dir() and not (root / "c3").exists()
    with ctx.sessions() as session:
        [notice] = session.scalars(select(m.Notification)
                                   .where(m.Notification.kind == "advance_notice")).all()
    assert notice.state == "delivered" and notice.delivered_at == NOON
    [mail] = [msg for msg in smtp.received.kept if "Advance notice" in str(msg["Subject"])]
    assert "until 30 days after this notice has been delivered" in \
        " ".join(mail.get_body(("plain",)).get_content().split())

    _pass(cfg, NOON + dt.timedelta(days=29, hours=23))
    assert states(ctx)["R-1"] == "approved" and (root / "c1").is_dir()

    _pass(cfg, NOON + dt.timedelta(days=30))
    assert states(ctx) == {"R-1": "executed", "R-2": "executed", "R-3": "executed"}
    assert not (root / "c1").exists() and not (root / "c2").exists()


def test_a_queued_notice_that_is_never_delivered_never_releases_the_case(ctx, tmp_path):
    """Queued (or given up, dead) is not delivered: however long after, nothing is carried
    out, and the executor counts the case as waiting for notice."""
    from execution_support import connectors as make_connectors

    from retentiond.notify.advance import send_advance_notices

    root = tmp_path / "files"
    make_files(root, ["c1"])
    seed(ctx, tmp_path, [{"record_id": "R-1", "system": "files", "locator": "c1",
                          "date_of_birth": "2000-01-01"}])
    set_notice(ctx, "SCH-01", days=7)
    queue_and_approve(ctx)
    send_advance_notices(ctx, issuer="Synthetic Borough Council")
    registry = make_connectors(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}")
    later = dataclasses.replace(ctx, clock=FixedClock(NOON + dt.timedelta(days=400)))
    try:
        for state in ("pending", "dead"):
            with later.sessions.begin() as session:
                session.execute(update(m.Notification).values(state=state))
            result = execute_due(later, registry, owner="t", batch_size=10, lease_s=60)
            assert (result.claimed, result.waiting_for_notice) == (0, 1)
        with later.sessions.begin() as session:
            session.execute(update(m.Notification).values(state="delivered", delivered_at=NOON))
        result = execute_due(later, registry, owner="t", batch_size=10, lease_s=60)
        assert (result.executed, result.waiting_for_notice) == (1, 0)
    finally:
        registry.close()
    assert not (root / "c1").exists()
