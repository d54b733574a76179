"""Acknowledgement and dispute of certificates by the controller.

Three ways in, one record (``acknowledgements``, with an audit event):

- a **link** in the notice carrying a signed token: ``{ack_url}?token=TOKEN``. The token is
  the certificate's serial, the last day the link works (``[notify] ack_link_days`` after the
  notice was built, 90 by default) and an HMAC-SHA256 of both under a key derived from
  ``[notify].secret_file``; it cannot be forged, extended or moved to another certificate.
  (A link made before links expired carries no date: it works until ``ack_link_days`` after
  its certificate was issued.) The web page behind the link must act on POST only (mail
  scanners follow links with GET): show the certificate and two buttons, then call
  :func:`acknowledge_with_token`;
- the **API**: :func:`acknowledge` for a controller already authenticated as ``controller``
  (the web API checks who the caller is; this function checks the certificate is theirs);
- an officer recording an acknowledgement received otherwise (``retentiond certificates
  acknowledge|dispute SERIAL``, ``via="cli"``).

Acknowledging twice records it once. A dispute needs a reason. A certificate has at most one
dispute: a later one (the same link used again, or another way in) adds its text to the first,
with who, how and when, and is audited (``CertificateDisputeAdded``); the same text again adds
nothing.
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
from retentiond.clock import LONDON
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.registry.db import write_transaction
from retentiond.registry.models import Acknowledgement, Certificate, Controller
from retentiond.text import has_visible

KINDS = ("acknowledged", "disputed")
#: The longest a certificate's dispute may grow, all its additions together: a link used in a
#: loop must not fill the registry.
MAX_DISPUTE_CHARS = 20_000


class TokenInvalid(LifecycleError):
    """An acknowledgement token that was not made by us (or was changed)."""


class TokenExpired(TokenInvalid):
    """A genuine acknowledgement token whose last day has passed."""

    def __init__(self, serial: str, expires_on: dt.date) -> None:
        self.serial, self.expires_on = serial, expires_on
        super().__init__(f"this acknowledgement link for {serial} expired after "
                         f"{expires_on.isoformat()}: ask the issuer to send the notice again")


@dataclass(frozen=True, kw_only=True)
class AckToken:
    """What a genuine token says: the certificate, and the last day the link works (None for a
    link made before links expired: it works until ``ack_link_days`` after the issue)."""

    serial: str
    expires_on: dt.date | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose (``ack``, ``webhook:CODE``) from the one configured secret."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def _mac(secret: bytes, serial: str, expires: str | None) -> bytes:
    message = f"ack:{serial}" if expires is None else f"ack:{serial}:{expires}"
    return hmac.new(derive_key(secret, "ack"), message.encode(), hashlib.sha256).digest()[:24]


def webhook_secret(secret: bytes, controller: str) -> str:
    """A controller's webhook secret, as ``retentiond notifications webhook-secret CODE`` prints
    it. The HMAC key of its webhook signatures is exactly this text (its ASCII bytes), so a
    receiver uses what it was handed as it is: no decoding step to guess."""
    return derive_key(secret, f"webhook:{controller}").hex()


def make_token(secret: bytes, serial: str, *, expires_on: dt.date) -> str:
    """The token in a certificate's acknowledgement link, working up to ``expires_on``."""
    expires = expires_on.strftime("%Y%m%d")
    return f"{_b64(serial.encode())}.{expires}.{_b64(_mac(secret, serial, expires))}"


def parse_token(secret: bytes, token: str) -> AckToken:
    """What a token says, if it is genuine (its date is not checked here)."""
    parts = token.strip().split(".")
    expires = parts[1] if len(parts) == 3 else None
    try:
        serial = _unb64(parts[0]).decode()
        given = _unb64(parts[-1])
        expires_on = (None if expires is None
                      else dt.datetime.strptime(expires, "%Y%m%d").date())  # noqa: DTZ007
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid("this acknowledgement link is damaged") from None
    if len(parts) not in (2, 3) or not hmac.compare_digest(_mac(secret, serial, expires), given):
        raise TokenInvalid("this acknowledgement link is not valid (it was changed, or it was "
                           "not made by this service)")
    return AckToken(serial=serial, expires_on=expires_on)


def read_token(secret: bytes, token: str) -> str:
    """The serial a token names, if the token is genuine, whatever its date (an officer
    recording an acknowledgement received otherwise may name the certificate by it)."""
    return parse_token(secret, token).serial


def link_expires_on(session: Session, token: AckToken, *, link_days: int) -> dt.date:
    """The last day a genuine token's link works."""
    if token.expires_on is not None:
        return token.expires_on
    issued = session.scalar(select(Certificate.issued_at).where(Certificate.serial == token.serial))
    if issued is None:
        raise LifecycleError(f"no certificate {token.serial}")
    return issued.astimezone(LONDON).date() + dt.timedelta(days=link_days)


def check_link(session: Session, secret: bytes, token: str, *, today: dt.date,
               link_days: int) -> str:
    """The serial a link names, if it is genuine and has not expired (``TokenExpired``)."""
    parsed = parse_token(secret, token)
    expires_on = link_expires_on(session, parsed, link_days=link_days)
    if today > expires_on:
        raise TokenExpired(parsed.serial, expires_on)
    return parsed.serial


def ack_links(base_url: str | None, secret: bytes | None, serial: str, *,
              expires_on: dt.date) -> tuple[str, str] | None:
    """(acknowledge URL, dispute URL) for a certificate, when links are configured."""
    if not base_url or not secret:
        return None
    token = make_token(secret, serial, expires_on=expires_on)
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


def _checked(kind: str, by: str, comment: str | None) -> tuple[str, str | None]:
    """Who, and the comment, stripped; refused before anything is read when they say
    nothing a reader can see (a dispute must say what is wrong)."""
    if kind not in KINDS:
        raise LifecycleError(f"unknown kind {kind!r} (one of: {', '.join(KINDS)})")
    by = required_text(by, "say who acknowledges or disputes (by)")
    if kind == "disputed":
        comment = required_text(comment, "a dispute needs a reason: what is wrong with the "
                                         "certificate")
    else:
        # A comment is optional on an acknowledgement: one that shows nothing is none.
        comment = (comment or "").strip()
        comment = comment if has_visible(comment) else None
    if comment is not None and len(comment) > MAX_DISPUTE_CHARS:
        raise LifecycleError(f"a comment may be at most {MAX_DISPUTE_CHARS:,} characters")
    return by, comment


def _record(session: Session, ctx: Context, cert: Certificate, *, kind: str, by: str,
            comment: str | None, via: str) -> AckView:
    now = ctx.clock.now()
    existing = session.scalars(select(Acknowledgement).where(
        Acknowledgement.certificate_id == cert.id, Acknowledgement.kind == kind)
        .order_by(Acknowledgement.id).limit(1).with_for_update()).first()
    if existing is not None and kind == "disputed":
        assert comment is not None
        return _add_to_dispute(session, ctx, cert, existing, by=by, comment=comment, via=via,
                               now=now)
    if existing is not None:
        return AckView(serial=cert.serial, kind=existing.kind, by=existing.by,
                       comment=existing.comment, via=existing.via, at=existing.at)
    session.add(Acknowledgement(certificate_id=cert.id, kind=kind, by=by[:200], comment=comment,
                                via=via, at=now))
    record_event(session, kind="CertificateAcknowledged" if kind == "acknowledged"
                 else "CertificateDisputed", actor=f"{via}:{by}"[:200], entity="certificate",
                 entity_id=cert.serial, at=now, reason=comment, data={"via": via})
    return AckView(serial=cert.serial, kind=kind, by=by, comment=comment, via=via, at=now)


def _add_to_dispute(session: Session, ctx: Context, cert: Certificate, dispute: Acknowledgement,
                    *, by: str, comment: str, via: str, now: dt.datetime) -> AckView:
    """A certificate already disputed: the new text goes on the end of the first dispute
    (the same text again changes nothing), audited as ``CertificateDisputeAdded``."""
    view = AckView(serial=cert.serial, kind=dispute.kind, by=dispute.by,
                   comment=dispute.comment, via=dispute.via, at=dispute.at)
    if (dispute.comment or "").endswith(comment):
        return view  # the same text again: a repeated submission
    addition = f"\n\n[added {now.isoformat(timespec='seconds')} by {by[:200]} ({via})] {comment}"
    if len(dispute.comment or "") + len(addition) > MAX_DISPUTE_CHARS:
        raise LifecycleError(f"the dispute of {cert.serial} is already as long as it may be "
                             f"({MAX_DISPUTE_CHARS:,} characters): contact the issuer directly")
    dispute.comment = (dispute.comment or "") + addition
    record_event(session, kind="CertificateDisputeAdded", actor=f"{via}:{by}"[:200],
                 entity="certificate", entity_id=cert.serial, at=now, reason=comment,
                 data={"via": via, "dispute": dispute.id})
    return AckView(serial=cert.serial, kind=dispute.kind, by=dispute.by,
                   comment=dispute.comment, via=dispute.via, at=dispute.at)


def _certificate(session: Session, serial: str) -> Certificate:
    # Locked (a row lock on PostgreSQL, the write lock on SQLite, taken by the caller's
    # write_transaction): two disputes at once must find one another, not both find none and
    # write two.
    cert = session.scalar(select(Certificate).where(Certificate.serial == serial)
                          .with_for_update())
    if cert is None:
        raise LifecycleError(f"no certificate {serial}")
    return cert


def acknowledge(ctx: Context, serial: str, *, by: str, kind: str = "acknowledged",
                comment: str | None = None, via: str = "api",
                controller: str | None = None, link: tuple[bytes, str, int] | None = None
                ) -> AckView:
    """Record an acknowledgement or dispute. With ``controller`` (the authenticated
    controller's code) the certificate must be that controller's. With ``link`` (secret,
    token, link days) the link must be genuine and unexpired, checked in the same
    transaction."""
    by, comment = _checked(kind, by, comment)
    with write_transaction(ctx.sessions) as session:
        if link is not None:
            serial = check_link(session, link[0], link[1], today=ctx.clock.today(),
                                link_days=link[2])
        cert = _certificate(session, serial)
        if controller is not None:
            code = session.scalar(select(Controller.code).where(Controller.id == cert.controller_id))
            if code != controller:
                # Same words as a missing one: never confirm another controller's serials.
                raise LifecycleError(f"no certificate {serial}")
        return _record(session, ctx, cert, kind=kind, by=by, comment=comment, via=via)


def acknowledge_with_token(ctx: Context, secret: bytes, token: str, *, by: str,
                           dispute: bool = False, comment: str | None = None,
                           link_days: int = 90) -> AckView:
    """What the acknowledgement page calls on POST: ``TokenExpired`` once the link's last
    day has passed."""
    serial = read_token(secret, token)
    return acknowledge(ctx, serial, by=by, kind="disputed" if dispute else "acknowledged",
                       comment=comment, via="link", link=(secret, token, link_days))


def acknowledgements(session: Session, certificate_id: int) -> list[AckView]:
    """A certificate's acknowledgements and disputes, oldest first."""
    serial = session.scalar(select(Certificate.serial).where(Certificate.id == certificate_id))
    return [AckView(serial=serial or "", kind=a.kind, by=a.by, comment=a.comment, via=a.via,
                    at=a.at)
            for a in session.scalars(select(Acknowledgement)
                                     .where(Acknowledgement.certificate_id == certificate_id)
                                     .order_by(Acknowledgement.id))]
