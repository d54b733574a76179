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
import ipaddress
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from retentiond.notify.settings import NotifySettings, SmtpSettings

SIGNATURE_HEADER = "X-Retentiond-Signature"


class DeliveryError(Exception):
    """A message was not delivered; the text holds no personal data."""


class TransientDeliveryError(DeliveryError):
    """Worth trying again later."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: the notice goes to the dead letters and IG is alerted."""


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpWebhookChannel:
    """HTTPS POST of the JSON, signed with HMAC-SHA256, with an ``Idempotency-Key`` header.

    Plain HTTP is refused except to a loopback address (a receiver on the same host)."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 15.0, user_agent: str = "retentiond") -> None:
        self.timeout_s = timeout_s
        self.user_agent = user_agent
        self._opener = urllib.request.build_opener(_NoRedirect())

    def send(self, message: Outgoing) -> str:
        url = urllib.parse.urlsplit(message.target)
        if url.scheme != "https" and not (url.scheme == "http" and _loopback(url.hostname or "")):
            raise PermanentDeliveryError(f"webhook URL must be https, not {url.scheme}")
        if message.hmac_key is None:
            raise TransientDeliveryError("no webhook secret: set [notify].secret_file")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            "Idempotency-Key": message.idempotency_key,
            SIGNATURE_HEADER: webhook_signature(message.hmac_key, message.timestamp, message.body),
            **message.headers,
        }
        request = urllib.request.Request(message.target, data=message.body, headers=headers,
                                         method="POST")
        host = url.hostname
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientDeliveryError(f"webhook {host}: {type(exc).__name__}: {reason}") from exc
        if 200 <= status < 300:
            return f"HTTP {status} from {host}"
        if status in (408, 409, 425, 429) or status >= 500:
            raise TransientDeliveryError(f"webhook {host} replied HTTP {status}")
        raise PermanentDeliveryError(f"webhook {host} replied HTTP {status}")


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
        by_name["webhook"] = HttpWebhookChannel(timeout_s=settings.webhook_timeout_s)
    if settings.smtp is not None:
        by_name["email"] = SmtpEmailChannel(settings.smtp, settings.sender)
    return Channels(settings=settings, by_name=by_name)
