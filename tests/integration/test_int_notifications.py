"""Notifications through real receivers on loopback: an SMTP server (aiosmtpd), including
one that is down for a while, and an HTTP webhook receiver that checks the HMAC."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for, standard_set
from int_support import audit_counts, states
from notify_support import (
    SECRET,
    HttpReceiver,
    SmtpReceiver,
    attachments,
    doc_block,
    free_port,
    notify_settings,
)
from sqlalchemy import select, update

from retentiond.certificates import issue_certificates
from retentiond.certificates.verify import verify_bytes
from retentiond.lifecycle.context import LifecycleError
from retentiond.logs import configure_logging
from retentiond.notify import deliver_notifications
from retentiond.notify.ack import acknowledge, acknowledge_with_token, webhook_secret
from retentiond.notify.channels import build_channels
from retentiond.notify.outbox import list_notifications, resend
from retentiond.registry import models as m


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test signing keys."""
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def issued(ctx, tmp_path, keys):
    """Two certificates (SCH-01, LA-01), their email notices queued."""
    standard_set(ctx, tmp_path)
    issue_certificates(ctx, signer_for(keys), batch="run")
    return ctx


def _later(ctx, seconds: float) -> None:
    ctx.clock.instant += dt.timedelta(seconds=seconds)


def _rows(ctx) -> list[m.Notification]:
    with ctx.sessions() as session:
        return list(session.scalars(select(m.Notification).order_by(m.Notification.id)))


def test_certificate_email_is_delivered_with_both_files(issued, keys):
    """Each controller gets one plain email with the PDF and signed JSON; disposals notified."""
    ctx = issued
    smtp = SmtpReceiver().start()
    try:
        result = deliver_notifications(ctx, build_channels(notify_settings(smtp.settings())))
    finally:
        smtp.stop()
    assert (result.delivered, result.retried, result.dead) == (2, 0, 0)
    by_to = {str(msg["To"]): msg for msg in smtp.received.all}
    assert set(by_to) == {"dpo@sch01.example", "ig@la01.example"}
    msg = by_to["dpo@sch01.example"]
    assert msg["Subject"].startswith("Certificate of return and disposal SCH-01-000001: 3 records")
    assert msg["Idempotency-Key"] == "certificate:SCH-01-000001:email"
    files = attachments(msg)
    assert set(files) == {"SCH-01-000001.pdf", "SCH-01-000001.json"}
    from cert_support import settings_for

    from retentiond.certificates.keys import publish

    publish(settings_for(keys), ctx_dir := Path(smtp.ca_file or keys).parent / "pub")
    ca = (ctx_dir / "ca.pem").read_bytes()
    assert verify_bytes(files["SCH-01-000001.pdf"], ca_pem=ca).ok
    assert verify_bytes(files["SCH-01-000001.json"], ca_pem=ca).ok
    text = msg.get_body(("plain",)).get_content()
    assert "acknowledge" in text and "SCH-01-000001" in text
    for personal in ("S-PUP-001", "1999-03-04", "mis/", "locator"):
        assert personal not in text
    assert {s[-1] for s in states(ctx).values()} == {"notified"}
    assert audit_counts(ctx)["DisposalNotified"] == 5
    assert {n.state for n in _rows(ctx)} == {"delivered"}


def test_smtp_down_for_a_while_loses_nothing_and_sends_once(issued):
    """With the server down, tries back off; when it comes up every notice arrives once."""
    ctx = issued
    port = free_port()
    smtp = SmtpReceiver(port=port)
    channels = build_channels(notify_settings(smtp.settings()))
    rng = random.Random(7)
    first = deliver_notifications(ctx, channels, rng=rng)
    assert (first.delivered, first.retried) == (0, 2)
    rows = _rows(ctx)
    assert all(n.state == "pending" and n.attempts == 1 and n.last_error for n in rows)
    delays = [(n.next_attempt_at - ctx.clock.now()).total_seconds() for n in rows]
    assert all(30 <= d <= 60 for d in delays)  # backoff_s=60 times jitter in [0.5, 1]
    # Not due yet: a pass now sends nothing and counts no try.
    assert deliver_notifications(ctx, channels, rng=rng).retried == 0
    _later(ctx, 61)
    second = deliver_notifications(ctx, channels, rng=rng)
    assert second.retried == 2
    assert all(60 <= (n.next_attempt_at - ctx.clock.now()).total_seconds() <= 120
               for n in _rows(ctx))  # the delay doubled
    smtp.start()
    try:
        _later(ctx, 121)
        third = deliver_notifications(ctx, channels, rng=rng)
        _later(ctx, 3600)
        assert deliver_notifications(ctx, channels, rng=rng).delivered == 0
    finally:
        smtp.stop()
    assert third.delivered == 2
    assert len(smtp.received.all) == 2 and len(smtp.received.kept) == 2
    assert [n.attempts for n in _rows(ctx)] == [3, 3]


def test_lost_outcome_is_resent_with_the_same_key(issued, monkeypatch):
    """If the process dies after sending and before recording it, the notice is sent again
    when its lease runs out, with the same idempotency key: the receiver keeps it once."""
    import retentiond.notify.outbox as outbox

    ctx = issued
    smtp = SmtpReceiver().start()
    channels = build_channels(notify_settings(smtp.settings()))
    real_finish = outbox._finish
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SystemExit("killed between send and record")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(outbox, "_finish", crash_once)
    try:
        with pytest.raises(SystemExit):
            deliver_notifications(ctx, channels)
        # Both notices were claimed; a restarted instance waits out the lease, then sends.
        assert deliver_notifications(ctx, channels).delivered == 0
        _later(ctx, 301)
        assert deliver_notifications(ctx, channels).delivered == 2
    finally:
        smtp.stop()
    assert len(smtp.received.all) == 3
    assert len(smtp.received.kept) == 2
    assert sorted(smtp.received.keys) == ["certificate:LA-01-000001:email",
                                          "certificate:SCH-01-000001:email"]


def test_refused_address_goes_to_dead_letters_and_alerts_ig(issued, capsys):
    """A permanent refusal dead-letters at once: log line, audit event, IG alert email;
    after the address is fixed, resend delivers it."""
    ctx = issued
    configure_logging("info", "json")  # the service's own set-up: JSON lines on stderr
    smtp = SmtpReceiver(refuse={"dpo@sch01.example"}).start()
    channels = build_channels(notify_settings(smtp.settings()))
    try:
        result = deliver_notifications(ctx, channels)
        assert (result.delivered, result.dead) == (2, 1)  # LA-01 and the IG alert; SCH-01 dead
        alert = [msg for msg in smtp.received.all if msg["To"] == "ig-team@la01.example"]
        assert len(alert) == 1
        body = alert[0].get_body(("plain",)).get_content()
        dead = next(n for n in _rows(ctx) if n.state == "dead")
        assert f"retentiond notifications resend {dead.id}" in body
        assert "certificate SCH-01-000001" in body
        assert "notification_dead_lettered" in capsys.readouterr().err
        assert audit_counts(ctx)["NotificationDeadLettered"] == 1
        assert [n.id for n in list_notifications(ctx, state="dead")] == [dead.id]
        # The controller's address is put right; the officer resends.
        with ctx.sessions.begin() as session:
            session.execute(update(m.Controller).where(m.Controller.code == "SCH-01")
                            .values(email="records@sch01.example"))
        view = resend(ctx, dead.id)
        assert (view.state, view.target, view.attempts) == ("pending", "records@sch01.example", 0)
        assert deliver_notifications(ctx, channels).delivered == 1
    finally:
        smtp.stop()
    assert any(msg["To"] == "records@sch01.example" for msg in smtp.received.all)
    assert {s[-1] for s in states(ctx).values()} == {"notified"}


def test_gives_up_after_max_attempts(issued):
    """A receiver that keeps failing: after max_attempts tries the notice is dead."""
    ctx = issued
    channels = build_channels(notify_settings(
        SmtpReceiver(port=free_port()).settings(), max_attempts=3, ig_email=None))
    for _ in range(3):
        deliver_notifications(ctx, channels)
        _later(ctx, 3600)
    assert [(n.state, n.attempts) for n in _rows(ctx)] == [("dead", 3), ("dead", 3)]
    assert {s[-1] for s in states(ctx).values()} == {"certified"}


def test_webhook_is_signed_and_carries_the_certificate(issued, keys):
    """The webhook POST has a valid HMAC signature, an Idempotency-Key, and the signed JSON;
    a 503 is retried and the retry is accepted."""
    ctx = issued
    key = webhook_secret(SECRET, "SCH-01").encode()
    with HttpReceiver(key, statuses=[503]) as hook:
        with ctx.sessions.begin() as session:
            controller = session.scalar(select(m.Controller).where(m.Controller.code == "SCH-01"))
            controller.webhook_url = hook.url
            cert = session.scalar(select(m.Certificate).where(m.Certificate.serial == "SCH-01-000001"))
            session.add(m.Notification(
                kind="certificate", certificate_id=cert.id, controller_id=controller.id,
                channel="webhook", target=hook.url, state="pending", attempts=0,
                next_attempt_at=ctx.clock.now(), idempotency_key="certificate:SCH-01-000001:webhook",
                payload={}, created_at=ctx.clock.now(), updated_at=ctx.clock.now()))
        channels = build_channels(notify_settings(None))  # webhook only
        first = deliver_notifications(ctx, channels)
        assert (first.delivered, first.retried, first.skipped) == (0, 1, 2)
        _later(ctx, 120)
        assert deliver_notifications(ctx, channels).delivered == 1
    assert hook.bad_signatures == 0
    [doc] = hook.received.kept
    assert hook.received.keys == ["certificate:SCH-01-000001:webhook"]
    assert doc["serial"] == "SCH-01-000001" and doc["records"] == 3
    from cert_support import settings_for

    from retentiond.certificates.keys import public_jwk

    jwks = {"keys": [public_jwk(settings_for(keys))]}
    assert verify_bytes(json.dumps(doc["certificate"]).encode(), jwks=jwks).ok
    assert doc["acknowledge_url"].startswith("https://retentiond.la01.example/acknowledge?token=")


def test_webhook_with_a_wrong_secret_is_refused_by_the_receiver(issued):
    """A receiver holding another secret refuses the signature (HTTP 401: a permanent error)."""
    ctx = issued
    with HttpReceiver(b"not-the-secret") as hook:
        with ctx.sessions.begin() as session:
            session.execute(update(m.Notification).values(channel="webhook", target=hook.url))
        result = deliver_notifications(ctx, build_channels(notify_settings(None, ig_email=None)))
    assert result.dead == 2 and hook.bad_signatures == 2


def test_starttls_and_login(issued, tmp_path):
    """Through a server that requires STARTTLS and authentication."""
    ctx = issued
    smtp = SmtpReceiver(tls_dir=tmp_path, credentials=("retentiond", "s3cret")).start()
    try:
        wrong = notify_settings(smtp.settings(username="retentiond", password="nope"))
        assert deliver_notifications(ctx, build_channels(wrong)).retried == 2
        _later(ctx, 3600)
        right = notify_settings(smtp.settings(username="retentiond", password="s3cret"))
        assert deliver_notifications(ctx, build_channels(right)).delivered == 2
    finally:
        smtp.stop()
    assert len(smtp.received.kept) == 2


def test_acknowledge_by_link_and_api(issued):
    """The link's token acknowledges its own certificate only; disputes need a reason; a
    controller cannot act on another's certificate; show lists them."""
    from retentiond.certificates.views import list_certificates, show_certificate

    ctx = issued
    smtp = SmtpReceiver().start()
    try:
        deliver_notifications(ctx, build_channels(notify_settings(smtp.settings())))
    finally:
        smtp.stop()
    msg = next(msg for msg in smtp.received.all if msg["To"] == "dpo@sch01.example")
    text = msg.get_body(("plain",)).get_content()
    token = re.search(r"token=([A-Za-z0-9_\-.]+)\s", text).group(1)
    view = acknowledge_with_token(ctx, SECRET, token, by="J. Synthetic, DPO")
    assert (view.serial, view.kind, view.via) == ("SCH-01-000001", "acknowledged", "link")
    # Twice is once.
    acknowledge_with_token(ctx, SECRET, token, by="J. Synthetic, DPO")
    with pytest.raises(LifecycleError, match="not valid"):
        acknowledge_with_token(ctx, SECRET, token[:-2] + "xx", by="someone")
    with pytest.raises(LifecycleError, match="not valid"):
        acknowledge_with_token(ctx, b"another-secret", token, by="someone")
    with pytest.raises(LifecycleError, match="needs a reason"):
        acknowledge(ctx, "SCH-01-000001", by="DPO", kind="disputed")
    with pytest.raises(LifecycleError, match="no certificate"):
        acknowledge(ctx, "SCH-01-000001", by="LA DPO", controller="LA-01")
    acknowledge(ctx, "SCH-01-000001", by="DPO", kind="disputed", controller="SCH-01",
                comment="PUP-002 was returned to us incomplete")
    detail = show_certificate(ctx, "SCH-01-000001")
    assert [(a["kind"], a["via"]) for a in detail.acknowledgements] == [
        ("acknowledged", "link"), ("disputed", "api")]
    assert {v.serial: v.acknowledgement for v in list_certificates(ctx)} == {
        "SCH-01-000001": "disputed", "LA-01-000001": None}
    counts = audit_counts(ctx)
    assert (counts["CertificateAcknowledged"], counts["CertificateDisputed"]) == (1, 1)


def test_a_notice_that_cannot_be_built_is_given_up_with_an_alert(issued, monkeypatch):
    """A message that cannot be built does not stop the pass: dead-lettered, IG alerted."""
    import retentiond.notify.outbox as outbox

    real = outbox.build_outgoing

    def broken(session, n, settings, *, now):
        if n.kind == "certificate" and n.id == 1:
            raise KeyError("document")
        return real(session, n, settings, now=now)

    monkeypatch.setattr(outbox, "build_outgoing", broken)
    smtp = SmtpReceiver().start()
    try:
        result = deliver_notifications(issued, build_channels(notify_settings(smtp.settings())))
    finally:
        smtp.stop()
    assert (result.delivered, result.dead) == (2, 1)  # the other certificate and the alert
    assert sorted(str(msg["To"]) for msg in smtp.received.all) == ["ig-team@la01.example",
                                                                   "ig@la01.example"]


def test_documented_webhook_checks_accept_a_real_delivery(issued, tmp_path):
    """The Python and openssl checks in docs/certificates.md, with the secret the CLI prints,
    accept a webhook retentiond delivered and refuse it with one byte of the body changed."""
    import shutil
    import subprocess

    from retentiond.cli.main import main

    ctx = issued
    (tmp_path / "notify-secret").write_bytes(SECRET)
    (tmp_path / "retentiond.toml").write_text(
        '[database]\nurl = "sqlite:///unused.db"\n[notify]\nsecret_file = "notify-secret"\n')
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--config", str(tmp_path / "retentiond.toml"), "notifications",
                     "webhook-secret", "SCH-01"]) == 0
    printed = out.getvalue().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", printed)
    with HttpReceiver(printed.encode()) as hook:
        with ctx.sessions.begin() as session:
            sch = session.scalar(select(m.Controller.id).where(m.Controller.code == "SCH-01"))
            session.execute(update(m.Notification).where(m.Notification.controller_id == sch)
                            .values(channel="webhook", target=hook.url))
        assert deliver_notifications(ctx, build_channels(notify_settings(None))).delivered == 1
    assert hook.bad_signatures == 0
    [(headers, body)] = hook.raw
    sig = headers["X-Retentiond-Signature"]
    t = int(sig.split(",")[0].removeprefix("t="))
    tampered = body.replace(b"SCH-01", b"SCH-02", 1)

    docs = Path(__file__).resolve().parents[2] / "docs" / "certificates.md"
    heading = "### Checking a webhook's signature"
    namespace: dict = {}
    exec(doc_block(docs, heading, "python"), namespace)
    check = namespace["signature_ok"]
    assert check(printed, sig, body, now=t) is True
    assert check(printed, sig, tampered, now=t) is False
    assert check(printed, sig, body, now=t + 3600) is False  # a replay, an hour later
    assert check(bytes.fromhex(printed).hex().upper(), sig, body, now=t) is False

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    script = doc_block(docs, heading, "sh")
    for data, expected in ((body, "signature valid"), (tampered, "signature INVALID")):
        (tmp_path / "body.json").write_bytes(data)
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "SECRET": printed, "SIG": sig},
                             check=False)
        assert run.stdout.strip() == expected, run.stderr
