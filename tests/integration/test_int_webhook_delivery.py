"""Webhook addresses checked again at delivery (issue 11, item 9), through a real HTTPS
receiver on loopback: the host name is looked up once per delivery and the POST goes to the
address that was checked (TLS still checks the name); a name that now resolves to a metadata,
link-local or private address, or a stored URL from before the import check, is refused
without sending anything, and the refusal is visible: on the notice, in the audit trail, in
the registry counts behind the digest and the metrics."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cert_support import make_keys, signer_for, standard_set
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from notify_support import notify_settings
from sqlalchemy import select

from retentiond.certificates import issue_certificates
from retentiond.daemon.queries import registry_counts
from retentiond.lifecycle.context import Context
from retentiond.notify import deliver_notifications
from retentiond.notify.channels import Channels, HttpWebhookChannel
from retentiond.notify.digest import LINES, digest_text
from retentiond.notify.outbox import resend
from retentiond.registry import models as m

HOOK_HOST = "hooks.sch01.test"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_keys(tmp_path_factory.mktemp("keys"))


class TlsReceiver:
    """An HTTPS server on 127.0.0.1 with a certificate for ``HOOK_HOST`` only: a client that
    connected by address but checked the name gets through; one that checked the address, or
    went somewhere else, does not. Records the Host header of every POST."""

    def __init__(self, tmp: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOOK_HOST)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOOK_HOST)]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.cert = tmp / "hook-cert.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = tmp / "hook-key.pem"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.hosts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.hosts.append(self.headers.get("Host", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


class Dns:
    """The name system as this test wants it, counting the lookups (the checks on its answers
    are what is tested; the name system is outside this service)."""

    def __init__(self, address: str) -> None:
        self.address, self.lookups = address, 0

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host != HOOK_HOST:
            return socket.getaddrinfo(host, port, *args, **kwargs)
        self.lookups += 1
        family = socket.AF_INET6 if ipaddress.ip_address(self.address).version == 6 else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (self.address, port))]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[TlsReceiver]:
    r = TlsReceiver(tmp_path)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _webhook_notice(ctx: Context, url: str) -> int:
    """A certificate notice for SCH-01 on the webhook channel, to ``url``."""
    with ctx.sessions.begin() as session:
        controller = session.scalar(select(m.Controller).where(m.Controller.code == "SCH-01"))
        assert controller is not None
        controller.webhook_url = url
        cert = session.scalar(select(m.Certificate).where(m.Certificate.serial == "SCH-01-000001"))
        assert cert is not None
        n = m.Notification(
            kind="certificate", certificate_id=cert.id, controller_id=controller.id,
            channel="webhook", target=url, state="pending", attempts=0,
            next_attempt_at=ctx.clock.now(), idempotency_key=f"certificate:SCH-01-000001:{url}",
            payload={}, created_at=ctx.clock.now(), updated_at=ctx.clock.now())
        session.add(n)
        session.flush()
        return n.id


def _channels(channel: HttpWebhookChannel) -> Channels:
    return Channels(settings=notify_settings(None), by_name={"webhook": channel})


def _notice(ctx: Context, nid: int) -> m.Notification:
    with ctx.sessions() as session:
        return session.get_one(m.Notification, nid)


@pytest.fixture
def issued(ctx: Context, tmp_path: Path, keys: Path) -> Context:
    standard_set(ctx, tmp_path)
    issue_certificates(ctx, signer_for(keys), batch="run")
    with ctx.sessions.begin() as session:  # only the webhook notices of this test
        for n in session.scalars(select(m.Notification)):
            session.delete(n)
    return ctx


def test_name_that_moves_to_the_metadata_service_is_refused(issued: Context,
                                                            receiver: TlsReceiver) -> None:
    """Delivered while the name points at the receiver (by the checked address, the TLS name
    and Host header still the name's); once the name points at 169.254.169.254 the resend is
    refused before anything is sent, and the refusal shows on the notice, in the audit trail
    and in the counts behind the digest and the metrics."""
    ctx = issued
    dns = Dns("127.0.0.1")
    channel = HttpWebhookChannel(timeout_s=5, resolver=dns, ssl_context=receiver.client_context())
    nid = _webhook_notice(ctx, f"https://{HOOK_HOST}:{receiver.port}/retentiond")
    assert deliver_notifications(ctx, _channels(channel)).delivered == 1
    assert receiver.hosts == [f"{HOOK_HOST}:{receiver.port}"]
    assert dns.lookups == 1  # one lookup a delivery: the connection uses its answer

    dns.address = "169.254.169.254"
    resend(ctx, nid)  # a delivered notice goes out again as a new one
    result = deliver_notifications(ctx, _channels(channel))
    assert (result.delivered, result.dead, result.retried) == (0, 1, 0)
    assert receiver.hosts == [f"{HOOK_HOST}:{receiver.port}"]  # nothing more was sent
    with ctx.sessions() as session:
        dead = session.scalar(select(m.Notification).where(m.Notification.state == "dead"))
        assert dead is not None
        assert dead.last_error == (f"webhook address refused: {HOOK_HOST} resolves to "
                                   "169.254.169.254, a cloud metadata service")
        event = session.scalar(select(m.AuditEvent).where(
            m.AuditEvent.kind == "NotificationDeadLettered"))
        assert event is not None and event.reason == dead.last_error
        counts = registry_counts(session, ctx.clock.today(), 30)
    assert (counts.notifications_dead, counts.webhooks_refused) == (1, 1)
    payload = {"as_of": "2026-11-22", "notifications_dead": 1, "webhooks_refused": 1}
    _, text = digest_text(payload)
    assert "1  notices given up" in text and "1  of which webhooks refused" in text
    assert {k for k, _ in LINES} >= {"notifications_dead", "webhooks_refused"}


@pytest.mark.parametrize(("url", "why"), [
    ("https://169.254.169.254/latest/meta-data/iam", "is a cloud metadata service"),
    ("http://hooks.la01.example.org/retention", "must be https://"),
    ("https://10.0.0.8/hook", "is a private network address"),
    ("https://[fe80::1]:8443/hook", "is a link-local address"),
])
def test_url_stored_before_the_import_check_is_refused_at_delivery(issued: Context,
                                                                   url: str, why: str) -> None:
    """A webhook URL already in the registry (imported before these checks) is refused at
    delivery, at once (a permanent error: no retries), with the reason on the notice."""
    ctx = issued
    nid = _webhook_notice(ctx, url)
    channel = HttpWebhookChannel(timeout_s=2, resolver=Dns("127.0.0.1"))
    result = deliver_notifications(ctx, _channels(channel))
    assert (result.delivered, result.dead) == (0, 1)
    notice = _notice(ctx, nid)
    assert notice.state == "dead" and notice.attempts == 1
    assert notice.last_error is not None
    assert notice.last_error.startswith("webhook address refused: ") and why in notice.last_error


def test_private_receiver_with_the_setting(issued: Context, receiver: TlsReceiver) -> None:
    """With ``allow_private_webhooks`` a name in the council's own network is delivered to;
    without it, it is refused."""
    ctx = issued
    dns = Dns("127.0.0.1")
    nid = _webhook_notice(ctx, f"https://{HOOK_HOST}:{receiver.port}/hook")
    # A private address cannot be bound here; loopback stands in for the receiver, and the
    # check is made on what the name resolves to at the moment of the check.
    dns.address = "10.20.0.7"
    refused = HttpWebhookChannel(timeout_s=2, resolver=dns, ssl_context=receiver.client_context())
    with pytest.raises(Exception, match="private network address"):
        refused.target(f"https://{HOOK_HOST}/hook")
    allowed = HttpWebhookChannel(timeout_s=2, resolver=dns, allow_private=True,
                                 ssl_context=receiver.client_context())
    assert allowed.target(f"https://{HOOK_HOST}/hook").addresses == ("10.20.0.7",)
    dns.address = "127.0.0.1"
    assert deliver_notifications(ctx, _channels(allowed)).delivered == 1
    assert _notice(ctx, nid).state == "delivered"


def test_name_that_does_not_resolve_is_retried_not_refused(issued: Context) -> None:
    """A name the name system cannot answer for just now is a transient failure (tried again
    with backoff), not a refusal."""
    ctx = issued
    nid = _webhook_notice(ctx, "https://hooks.nowhere.invalid/retention")
    result = deliver_notifications(ctx, _channels(HttpWebhookChannel(timeout_s=2)))
    assert (result.retried, result.dead) == (1, 0)
    notice = _notice(ctx, nid)
    assert notice.state == "pending" and notice.last_error is not None
    assert notice.last_error.startswith("webhook host hooks.nowhere.invalid does not resolve")
