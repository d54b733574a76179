"""Acknowledgement and dispute of certificates by the controller.

Three ways in, one record (``acknowledgements``, with an audit event):

- a **link** in the notice carrying a signed token: ``{ack_url}?token=TOKEN``. The token is
  the certificate's serial and an HMAC-SHA256 of it under a key derived from
  ``[notify].secret_file``; it cannot be forged or moved to another certificate. The web page
  behind the link must act on POST only (mail scanners follow links with GET): show the
  certificate and two buttons, then call :func:`acknowledge_with_token`;
- the **API**: :func:`acknowledge` for a controller already authenticated as ``controller``
  (the web API checks who the caller is; this function checks the certificate is theirs);
- an officer recording an acknowledgement received otherwise (``retentiond certificates
  acknowledge|dispute SERIAL``, ``via="cli"``).

Acknowledging twice records it once. A dispute needs a reason, and is recorded each time.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.models import Acknowledgement, Certificate, Controller

KINDS = ("acknowledged", "disputed")


class TokenInvalid(LifecycleError):
    """An acknowledgement token that was not made by us (or was changed)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose (``ack``, ``webhook:CODE``) from the one configured secret."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def webhook_secret(secret: bytes, controller: str) -> str:
    """A controller's webhook secret, as ``retentiond notifications webhook-secret CODE`` prints
    it. The HMAC key of its webhook signatures is exactly this text (its ASCII bytes), so a
    receiver uses what it was handed as it is: no decoding step to guess."""
    return derive_key(secret, f"webhook:{controller}").hex()


def make_token(secret: bytes, serial: str) -> str:
    """The token in a certificate's acknowledgement link."""
    mac = hmac.new(derive_key(secret, "ack"), b"ack:" + serial.encode(), hashlib.sha256).digest()
    return f"{_b64(serial.encode())}.{_b64(mac[:24])}"


def read_token(secret: bytes, token: str) -> str:
    """The serial a token names, if the token is genuine."""
    head, sep, tail = token.strip().partition(".")
    try:
        serial = _unb64(head).decode()
        given = _unb64(tail)
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid("this acknowledgement link is damaged") from None
    mac = hmac.new(derive_key(secret, "ack"), b"ack:" + serial.encode(), hashlib.sha256).digest()
    if not sep or not hmac.compare_digest(mac[:24], given):
        raise TokenInvalid("this acknowledgement link is not valid (it was changed, or it was "
                           "not made by this service)")
    return serial


def ack_links(base_url: str | None, secret: bytes | None, serial: str) -> tuple[str, str] | None:
    """(acknowledge URL, dispute URL) for a certificate, when links are configured."""
    if not base_url or not secret:
        return None
    token = make_token(secret, serial)
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}token={token}", f"{base_url}{sep}token={token}&action=dispute"


@dataclass(frozen=True, kw_only=True)
class AckView:
    serial: str
    kind: str
    by: str
    comment: str | None
    via: str
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "kind": self.kind, "by": self.by, "comment": self.comment,
                "via": self.via, "at": self.at.isoformat()}


def _record(session: Session, ctx: Context, cert: Certificate, *, kind: str, by: str,
            comment: str | None, via: str) -> AckView:
    if kind not in KINDS:
        raise LifecycleError(f"unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    by = by.strip()
    if not by:
        raise LifecycleError("say who acknowledges or disputes (by)")
    comment = (comment or "").strip() or None
    if kind == "disputed" and not comment:
        raise LifecycleError("a dispute needs a reason: what is wrong with the certificate")
    now = ctx.clock.now()
    if kind == "acknowledged":
        existing = session.scalars(select(Acknowledgement).where(
            Acknowledgement.certificate_id == cert.id, Acknowledgement.kind == "acknowledged")
            .order_by(Acknowledgement.id).limit(1)).first()
        if existing is not None:
            return AckView(serial=cert.serial, kind=existing.kind, by=existing.by,
                           comment=existing.comment, via=existing.via, at=existing.at)
    session.add(Acknowledgement(certificate_id=cert.id, kind=kind, by=by[:200], comment=comment,
                                via=via, at=now))
    record_event(session, kind="CertificateAcknowledged" if kind == "acknowledged"
                 else "CertificateDisputed", actor=f"{via}:{by}"[:200], entity="certificate",
                 entity_id=cert.serial, at=now, reason=comment, data={"via": via})
    return AckView(serial=cert.serial, kind=kind, by=by, comment=comment, via=via, at=now)


def _certificate(session: Session, serial: str) -> Certificate:
    cert = session.scalar(select(Certificate).where(Certificate.serial == serial))
    if cert is None:
        raise LifecycleError(f"no certificate {serial}")
    return cert


def acknowledge(ctx: Context, serial: str, *, by: str, kind: str = "acknowledged",
                comment: str | None = None, via: str = "api",
                controller: str | None = None) -> AckView:
    """Record an acknowledgement or dispute. With ``controller`` (the authenticated
    controller's code) the certificate must be that controller's."""
    with ctx.sessions.begin() as session:
        cert = _certificate(session, serial)
        if controller is not None:
            code = session.scalar(select(Controller.code).where(Controller.id == cert.controller_id))
            if code != controller:
                # Same words as a missing one: never confirm another controller's serials.
                raise LifecycleError(f"no certificate {serial}")
        return _record(session, ctx, cert, kind=kind, by=by, comment=comment, via=via)


def acknowledge_with_token(ctx: Context, secret: bytes, token: str, *, by: str,
                           dispute: bool = False, comment: str | None = None) -> AckView:
    """What the acknowledgement page calls on POST."""
    serial = read_token(secret, token)
    return acknowledge(ctx, serial, by=by, kind="disputed" if dispute else "acknowledged",
                       comment=comment, via="link")


def acknowledgements(session: Session, certificate_id: int) -> list[AckView]:
    """A certificate's acknowledgements and disputes, oldest first."""
    serial = session.scalar(select(Certificate.serial).where(Certificate.id == certificate_id))
    return [AckView(serial=serial or "", kind=a.kind, by=a.by, comment=a.comment, via=a.via,
                    at=a.at)
            for a in session.scalars(select(Acknowledgement)
                                     .where(Acknowledgement.certificate_id == certificate_id)
                                     .order_by(Acknowledgement.id))]
