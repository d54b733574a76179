"""Two instances on one PostgreSQL: issuing at the same moment never forks a controller's
chain nor certifies a disposal twice; delivering at the same moment sends each notice once."""

from __future__ import annotations

import threading

import pytest
from cert_support import make_keys, signer_for, standard_set
from notify_support import SmtpReceiver, notify_settings
from sqlalchemy import func, select

from retentiond.certificates import issue_certificates
from retentiond.notify import deliver_notifications
from retentiond.notify.channels import build_channels
from retentiond.registry import models as m


@pytest.fixture
def pg_ctx(ctx, database_url):
    """The context, on PostgreSQL only (SQLite is single-instance by design)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances share PostgreSQL only")
    return ctx


def _together(*calls):
    """Run the calls in threads that start at the same moment; return their results."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_concurrent_issue_gives_one_chain(pg_ctx, tmp_path, tmp_path_factory):
    """Two issuers at once: one certificate per controller, every disposal in exactly one."""
    standard_set(pg_ctx, tmp_path)
    signer = signer_for(make_keys(tmp_path_factory.mktemp("k")))
    a, b = _together(lambda: issue_certificates(pg_ctx, signer, batch="run"),
                     lambda: issue_certificates(pg_ctx, signer, batch="run"))
    assert len(a) + len(b) == 2
    with pg_ctx.sessions() as session:
        sequences = session.execute(select(m.Certificate.serial, m.Certificate.sequence)).all()
        items = session.scalar(select(func.count()).select_from(m.CertificateItem))
    assert sorted(sequences) == [("LA-01-000001", 1), ("SCH-01-000001", 1)]
    assert items == 5


def test_concurrent_delivery_sends_each_notice_once(pg_ctx, tmp_path, tmp_path_factory):
    """Two delivery passes at once: the receiver gets each notice once."""
    standard_set(pg_ctx, tmp_path)
    issue_certificates(pg_ctx, signer_for(make_keys(tmp_path_factory.mktemp("k"))), batch="run")
    smtp = SmtpReceiver().start()
    try:
        channels = build_channels(notify_settings(smtp.settings()))
        a, b = _together(lambda: deliver_notifications(pg_ctx, channels, owner="one"),
                         lambda: deliver_notifications(pg_ctx, channels, owner="two"))
    finally:
        smtp.stop()
    assert a.delivered + b.delivered == 2
    assert len(smtp.received.all) == 2


