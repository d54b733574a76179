"""Delivery channels: email (SMTP) and webhook (HTTPS POST with an HMAC signature).

A channel sends one :class:`Outgoing` message and either returns (delivered) or raises a
:class:`TransientDeliveryError` (try again later: connection refused, timeout, 4xx SMTP reply,
HTTP 5xx/429) or a :class:`PermanentDeliveryError` (trying again cannot help: the address is
refused, HTTP 4xx). Both carry a message with no personal data.

Every message carries its idempotency key, so a receiver that keeps the keys it has seen gets
each notice once even when a delivery is repeated (a reply lost after the receiver took the
message): email as the ``Message-ID`` and an ``Idempotency-Key`` header, webhook as the
``Idempotency-Key`` HTTP header.

Webhook signature, for the controller to check::

    X-Retentiond-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

where ``secret`` is the controller's webhook secret exactly as ``retentiond notifications
webhook-secret CODE`` prints it (the text is the key: no hex decoding) and ``body`` the raw
request body. ``docs/certificates.md`` shows the check in Python and with openssl.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

from retentiond.notify.addresses import (
    HostUnresolved,
    Resolver,
    WebhookAddressError,
    WebhookTarget,
    check_webhook,
)
from retentiond.notify.settings import NotifySettings, SmtpSettings

SIGNATURE_HEADER = "X-Retentiond-Signature"


class DeliveryError(Exception):
    """A message was not delivered; the text holds no personal data."""


class TransientDeliveryError(DeliveryError):
    """Worth trying again later."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: the notice goes to the dead letters and IG is alerted."""


class RefusedAddressError(PermanentDeliveryError):
    """The webhook's address is not one this service may send to (checked again at each
    delivery, after a fresh DNS lookup): nothing was sent. Its message starts with
    ``retentiond.notify.addresses.REFUSED``."""


@dataclass(frozen=True, kw_only=True)
class Attachment:
    filename: str
    mime: str
    data: bytes


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """One message ready to send on one channel."""

    notification_id: int
    channel: str
    target: str
    idempotency_key: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()
    #: The webhook body (JSON bytes); email ignores it.
    body: bytes = b""
    #: The webhook HMAC key for this controller.
    hmac_key: bytes | None = None
    #: The time put in the webhook signature (unix seconds).
    timestamp: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    """Sends one message; raises a DeliveryError when it could not."""

    name: str

    def send(self, message: Outgoing) -> str:
        """Deliver ``message``; return a short receipt (the server's reply)."""
        ...


def webhook_signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The value of the signature header for a body sent at ``timestamp``."""
    mac = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def check_webhook_signature(key: bytes, header: str, body: bytes, *, now: int | None = None,
                            tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the HMAC and compare in constant time; with ``now``,
    also refuse a signature older than ``tolerance_s`` (a replay)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if now is not None and abs(now - t) > tolerance_s:
        return False
    expected = webhook_signature(key, t, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def message_id(idempotency_key: str) -> str:
    """A stable Message-ID: the same notice always has the same one."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@retentiond>"


class SmtpEmailChannel:
    """Email through an SMTP server: STARTTLS (or implicit TLS) and login when configured."""

    name = "email"

    def __init__(self, smtp: SmtpSettings, sender: str) -> None:
        self.smtp = smtp
        self.sender = sender

    def build(self, message: Outgoing) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = message.target
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(message.timestamp or None, usegmt=True)
        msg["Message-ID"] = message_id(message.idempotency_key) if message.idempotency_key \
            else make_msgid(domain="retentiond")
        msg["Idempotency-Key"] = message.idempotency_key
        msg["Auto-Submitted"] = "auto-generated"
        for k, v in message.headers.items():
            msg[k] = v
        msg.set_content(message.text)
        for a in message.attachments:
            maintype, _, subtype = a.mime.partition("/")
            msg.add_attachment(a.data, maintype=maintype, subtype=subtype, filename=a.filename)
        return msg

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.smtp.ca_file) if self.smtp.ca_file else None)
        return ctx

    def send(self, message: Outgoing) -> str:
        s = self.smtp
        msg = self.build(message)
        try:
            if s.security == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                                        context=self._context())
            else:
                client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            with client:
                client.ehlo()
                if s.security == "starttls":
                    client.starttls(context=self._context())
                    client.ehlo()
                if s.username:
                    client.login(s.username, s.password or "")
                refused = client.send_message(msg)
            if refused:
                raise PermanentDeliveryError(f"recipient refused: {sorted(refused.values())[0]}")
            return f"accepted by {s.host}:{s.port}"
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError(f"SMTP server {s.host}: {exc}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientDeliveryError(f"SMTP login refused by {s.host} ({exc.smtp_code})") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({c for c, _ in exc.recipients.values()})
            cls = PermanentDeliveryError if codes and codes[0] >= 500 else TransientDeliveryError
            raise cls(f"recipient refused by {s.host} (SMTP {codes})") from exc
        except smtplib.SMTPResponseException as exc:
            cls = PermanentDeliveryError if 500 <= exc.smtp_code < 600 else TransientDeliveryError
            raise cls(f"SMTP server {s.host} replied {exc.smtp_code}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientDeliveryError(f"SMTP server {s.host}:{s.port}: "
                                         f"{type(exc).__name__}: {exc}") from exc


def _pinned(connection: http.client.HTTPConnection, address: str, port: int) -> None:
    """Make ``connection`` connect to ``address`` (the one checked), whatever the host name
    resolves to by then: the TLS name check and the Host header still use the name."""
    def create_connection(_address: Any, timeout: Any = None, source_address: Any = None,
                          *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((address, port), timeout, source_address)

    connection._create_connection = create_connection  # type: ignore[attr-defined]


class HttpWebhookChannel:
    """HTTPS POST of the JSON, signed with HMAC-SHA256, with an ``Idempotency-Key`` header.

    Before each POST the URL is checked again (``retentiond.notify.addresses``): plain HTTP
    only to this host, and no address the host name now resolves to may be link-local, a
    metadata service, unspecified, or (without ``allow_private``) private. The connection
    goes to the address that was checked, never to a second lookup's answer. Redirects are
    not followed."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 15.0, user_agent: str = "retentiond",
                 allow_private: bool = False, resolver: Resolver | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self.allow_private = allow_private
        self.resolver = resolver or socket.getaddrinfo
        self.ssl_context = ssl_context

    def target(self, url: str) -> WebhookTarget:
        """The checked target of ``url``; ``RefusedAddressError`` when it may not be sent to,
        ``TransientDeliveryError`` when its name does not resolve just now."""
        try:
            return check_webhook(url, allow_private=self.allow_private, resolver=self.resolver,
                                 require_resolution=True)
        except HostUnresolved as exc:
            raise TransientDeliveryError(str(exc)) from None
        except WebhookAddressError as exc:
            raise RefusedAddressError(str(exc)) from None

    def send(self, message: Outgoing) -> str:
        target = self.target(message.target)
        if message.hmac_key is None:
            raise TransientDeliveryError("no webhook secret: set [notify].secret_file")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "Idempotency-Key": message.idempotency_key,
            SIGNATURE_HEADER: webhook_signature(message.hmac_key, message.timestamp, message.body),
            **message.headers,
        }
        path = target.url.path or "/"
        if target.url.query:
            path += f"?{target.url.query}"
        host = target.host
        if not target.addresses:
            raise TransientDeliveryError(f"webhook {host}: the name resolves to no address")
        last: Exception | None = None
        for address in target.addresses:
            connection: http.client.HTTPConnection
            if target.url.scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, target.port, timeout=self.timeout_s,
                    context=self.ssl_context or ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(host, target.port, timeout=self.timeout_s)
            _pinned(connection, address, target.port)
            try:
                connection.request("POST", path, body=message.body, headers=headers)
                status = connection.getresponse().status
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            finally:
                connection.close()
            if 200 <= status < 300:
                return f"HTTP {status} from {host}"
            if status in (408, 409, 425, 429) or status >= 500:
                raise TransientDeliveryError(f"webhook {host} replied HTTP {status}")
            raise PermanentDeliveryError(f"webhook {host} replied HTTP {status}")
        raise TransientDeliveryError(f"webhook {host}: {type(last).__name__}: {last}")


@dataclass(frozen=True, kw_only=True)
class Channels:
    """What :func:`retentiond.notify.deliver_notifications` sends through, with the delivery
    settings. Build it from the config with :func:`channels_from_config`; tests build it with
    their own channels."""

    settings: NotifySettings
    by_name: dict[str, Channel]

    def get(self, name: str) -> Channel | None:
        return self.by_name.get(name)


def build_channels(settings: NotifySettings) -> Channels:
    """Email when ``[notify.smtp]`` is configured; webhook when ``[notify].secret_file`` is
    (its signatures need the secret). Notices for a missing channel wait, untried."""
    by_name: dict[str, Channel] = {}
    if settings.secret is not None:
        by_name["webhook"] = HttpWebhookChannel(timeout_s=settings.webhook_timeout_s,
                                                allow_private=settings.allow_private_webhooks)
    if settings.smtp is not None:
        by_name["email"] = SmtpEmailChannel(settings.smtp, settings.sender)
    return Channels(settings=settings, by_name=by_name)
