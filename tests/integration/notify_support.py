"""Real receivers on loopback for the notification tests: an SMTP server (aiosmtpd) and an
HTTP server (http.server in a thread) that checks the webhook HMAC.

Both record every message, and can honour the idempotency key the way a careful receiver
does: a message whose key was seen before is acknowledged but not kept again.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from retentiond.notify.channels import SIGNATURE_HEADER, check_webhook_signature
from retentiond.notify.settings import NotifySettings, SmtpSettings

SECRET = b"synthetic-notify-secret-for-tests"


def free_port() -> int:
    """A TCP port nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """What a receiver took: every delivery, and the ones it kept (first of each key)."""

    all: list[Any] = field(default_factory=list)
    kept: list[Any] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


class _Handler:
    def __init__(self, received: Received, refuse: set[str], lock: threading.Lock) -> None:
        self.received, self.refuse, self.lock = received, refuse, lock

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        key = str(msg["Idempotency-Key"] or "")
        with self.lock:
            self.received.all.append(msg)
            if key not in self.received.keys:
                self.received.keys.append(key)
                self.received.kept.append(msg)
        return "250 OK"


def _tls_context(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    """A server certificate for 127.0.0.1, self-signed; returns the server context and the
    certificate file a client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, cert_path


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1, on a port chosen up front so it can be down for a while
    and come up later on the same port."""

    def __init__(self, *, port: int | None = None, refuse: set[str] | None = None,
                 tls_dir: Path | None = None, credentials: tuple[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.received = Received()
        self.refuse = refuse or set()
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.ca_file: Path | None = None
        self._kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            ctx, self.ca_file = _tls_context(tls_dir)
            self._kwargs.update(tls_context=ctx, require_starttls=True)
        if credentials is not None:
            user, password = credentials

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                              auth_data: Any) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword) and \
                    auth_data.login.decode() == user and auth_data.password.decode() == password
                return AuthResult(success=ok, handled=False)

            self._kwargs.update(authenticator=authenticator, auth_required=True,
                                auth_require_tls=tls_dir is not None)

    def start(self) -> SmtpReceiver:
        handler = _Handler(self.received, self.refuse, self._lock)
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port,
                                      server_hostname="127.0.0.1", ready_timeout=5, **self._kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self, **extra: Any) -> SmtpSettings:
        """Client settings that reach this server."""
        security = "starttls" if self.ca_file else "none"
        base = {"host": "127.0.0.1", "port": self.port, "security": security, "username": None,
                "password": None, "ca_file": self.ca_file, "timeout_s": 5.0}
        return SmtpSettings(**{**base, **extra})


def notify_settings(smtp: SmtpSettings | None, **extra: Any) -> NotifySettings:
    """Delivery settings for tests: short backoff, a known secret, links configured."""
    base: dict[str, Any] = {
        "sender": "retentiond@la01.example", "ig_email": "ig-team@la01.example",
        "max_attempts": 4, "backoff_s": 60.0, "backoff_max_s": 3600.0, "lease_s": 300,
        "secret": SECRET, "ack_url": "https://retentiond.la01.example/acknowledge",
        "verify_url": "https://la01.example/retentiond/", "smtp": smtp,
        "webhook_timeout_s": 5.0,
    }
    return NotifySettings(**{**base, **extra})


def attachments(msg: EmailMessage) -> dict[str, bytes]:
    """File name -> bytes of a received email's attachments."""
    return {part.get_filename(): part.get_payload(decode=True)
            for part in msg.iter_attachments()}


class HttpReceiver:
    """A webhook receiver on 127.0.0.1 that checks the HMAC signature with ``key`` and answers
    with the next status of ``statuses`` (then 200)."""

    def __init__(self, key: bytes, statuses: list[int] | None = None) -> None:
        self.key = key
        self.statuses = list(statuses or [])
        self.received = Received()
        #: Every accepted request as it came: (headers, raw body).
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.bad_signatures = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = check_webhook_signature(outer.key, self.headers.get(SIGNATURE_HEADER, ""),
                                             body)
                status = outer.statuses.pop(0) if outer.statuses else 200
                if not ok:
                    outer.bad_signatures += 1
                    status = 401
                elif status == 200:
                    key = self.headers.get("Idempotency-Key", "")
                    doc = json.loads(body)
                    outer.raw.append((dict(self.headers.items()), body))
                    outer.received.all.append(doc)
                    if key not in outer.received.keys:
                        outer.received.keys.append(key)
                        outer.received.kept.append(doc)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/retentiond-hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def doc_block(path: Path, heading: str, lang: str) -> str:
    """The first fenced ``lang`` code block under ``heading`` in a Markdown file: what a
    reader copies, so that the test runs exactly that."""
    text = path.read_text()
    start = text.index(heading)
    fence = f"```{lang}\n"
    begin = text.index(fence, start) + len(fence)
    return text[begin:text.index("```", begin)]
