"""The transactional outbox: delivering what issuing certificates and advance notices queued.

Entry point for the daemon and the CLI::

    channels = channels_from_config(cfg)
    result = deliver_notifications(ctx, channels, stop=stop_event)

One pass: claim the notices that are due (``pending`` and ``next_attempt_at`` reached) with a
lease, send each outside any transaction, record the outcome. A failure is retried with
exponential backoff and jitter (``backoff_s * 2**(tries-1)``, at most ``backoff_max_s``, times
a random factor in [0.5, 1]); after ``max_attempts`` tries, or at once on a permanent error,
the notice goes to the dead letters (``dead``): a log line at error level, an audit event and
an alert email to ``[notify].ig_email`` (itself through the outbox). ``retentiond
notifications resend ID`` sends one again.

Delivery is at least once: if the process dies after the receiver took a message and before
the outcome is recorded, the lease runs out and the message is sent again, with the same
idempotency key, so a receiver that honours the key takes it once.

When a certificate notice is delivered on any channel, the certificate's disposals move
``certified -> notified`` in the same transaction, with audit events.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.logs import get_logger
from retentiond.notify.channels import (
    Channels,
    DeliveryError,
    PermanentDeliveryError,
)
from retentiond.notify.messages import build_outgoing
from retentiond.notify.settings import NotifySettings
from retentiond.registry.models import (
    AuditEvent,
    Certificate,
    CertificateItem,
    Controller,
    Disposal,
    Notification,
)

log = get_logger("retentiond.notify")

STATES = ("pending", "delivered", "dead")
_BATCH = 20

Stop = threading.Event | Callable[[], bool] | None


@dataclass(kw_only=True)
class DeliveryResult:
    """What one pass did."""

    delivered: int = 0
    #: Failed this time, to be tried again later.
    retried: int = 0
    #: Given up: moved to the dead letters (IG alerted).
    dead: int = 0
    #: Due, but no channel of that kind is configured: left pending, tries not counted.
    skipped: int = 0

    def as_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "retried": self.retried, "dead": self.dead,
                "skipped": self.skipped}


def backoff_s(settings: NotifySettings, attempts: int, rng: random.Random) -> float:
    """The delay before the next try after ``attempts`` failed tries."""
    base = min(settings.backoff_max_s, settings.backoff_s * 2 ** max(0, attempts - 1))
    return float(base * (0.5 + rng.random() / 2))


def _stopped(stop: Stop) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _claim(ctx: Context, owner: str, channels: list[str], lease_s: int,
           exclude: set[int]) -> list[int]:
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        query = (
            select(Notification)
            .where(Notification.state == "pending", Notification.next_attempt_at <= now,
                   Notification.channel.in_(channels),
                   or_(Notification.lease_until.is_(None), Notification.lease_until <= now))
            .order_by(Notification.next_attempt_at, Notification.id).limit(_BATCH)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            query = query.where(Notification.id.not_in(exclude))
        rows = list(session.scalars(query))
        for n in rows:
            n.lease_owner, n.lease_until = owner, now + dt.timedelta(seconds=lease_s)
        return [n.id for n in rows]


def _notified(session: Session, ctx: Context, cert_id: int, now: dt.datetime) -> int:
    ids = list(session.scalars(
        select(Disposal.id).join(CertificateItem, CertificateItem.disposal_id == Disposal.id)
        .where(CertificateItem.certificate_id == cert_id, Disposal.state == "certified")))
    if not ids:
        return 0
    serial = session.scalar(select(Certificate.serial).where(Certificate.id == cert_id))
    for start in range(0, len(ids), 5000):
        session.execute(update(Disposal).where(Disposal.id.in_(ids[start:start + 5000]),
                                               Disposal.state == "certified")
                        .values(state="notified", updated_at=now)
                        .execution_options(synchronize_session=False))
    session.add_all([AuditEvent(
        occurred_at=now, kind="DisposalNotified", actor=ctx.actor, entity="disposal",
        entity_id=str(i), reason=f"the controller was sent certificate {serial}",
        policy_version=None, data={"certificate": serial}) for i in ids])
    return len(ids)


def _about(session: Session, n: Notification) -> str:
    if n.kind == "certificate":
        serial = session.scalar(select(Certificate.serial).where(Certificate.id == n.certificate_id))
        return f"certificate {serial}"
    if n.kind == "advance_notice":
        return f"advance notice {n.advance_notice_id}"
    if n.kind == "termination_notice":
        return f"termination notice for {(n.payload or {}).get('agreement', {}).get('code')}"
    return n.kind


def _give_up(session: Session, ctx: Context, n: Notification, settings: NotifySettings,
             error: str, now: dt.datetime) -> None:
    n.state = "dead"
    code = session.scalar(select(Controller.code).where(Controller.id == n.controller_id)) \
        if n.controller_id else None
    about = _about(session, n)
    log.error("notification_dead_lettered", notification_id=n.id, kind=n.kind,
              channel=n.channel, controller=code, about=about, attempts=n.attempts, error=error)
    record_event(session, kind="NotificationDeadLettered", actor=ctx.actor, entity="notification",
                 entity_id=n.id, at=now, reason=error,
                 data={"kind": n.kind, "channel": n.channel, "controller": code, "about": about,
                       "attempts": n.attempts})
    if n.kind == "ig_alert":
        return  # no alert about an alert: the log line above is the alarm
    if not settings.ig_email:
        log.error("ig_alert_not_configured", notification_id=n.id,
                  hint="set [notify].ig_email to have IG officers alerted by email")
        return
    session.add(Notification(
        kind="ig_alert", controller_id=None, channel="email", target=settings.ig_email,
        state="pending", attempts=0, next_attempt_at=now,
        idempotency_key=f"ig-alert:{n.id}:{now.strftime('%Y%m%dT%H%M%S.%f')}",
        payload={"notification_id": n.id, "kind": n.kind, "channel": n.channel,
                 "controller": code, "about": about, "attempts": n.attempts, "error": error},
        created_at=now, updated_at=now))


def _finish(ctx: Context, notification_id: int, settings: NotifySettings,
            error: DeliveryError | None, receipt: str, rng: random.Random,
            result: DeliveryResult) -> None:
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        n = session.get(Notification, notification_id, with_for_update=True,
                        populate_existing=True)
        if n is None or n.state != "pending":
            return  # settled elsewhere meanwhile (a resend, another instance)
        n.attempts += 1
        n.lease_owner = n.lease_until = None
        n.updated_at = now
        if error is None:
            n.state, n.delivered_at, n.last_error = "delivered", now, None
            notified = _notified(session, ctx, n.certificate_id, now) \
                if n.kind == "certificate" and n.certificate_id is not None else 0
            record_event(session, kind="NotificationDelivered", actor=ctx.actor,
                         entity="notification", entity_id=n.id, at=now,
                         data={"kind": n.kind, "channel": n.channel, "about": _about(session, n),
                               "attempts": n.attempts, "receipt": receipt,
                               "disposals_notified": notified})
            log.info("notification_delivered", notification_id=n.id, kind=n.kind,
                     channel=n.channel, attempts=n.attempts)
            result.delivered += 1
            return
        message = str(error)[:2000]
        n.last_error = message
        if isinstance(error, PermanentDeliveryError) or n.attempts >= settings.max_attempts:
            _give_up(session, ctx, n, settings, message, now)
            result.dead += 1
            return
        delay = backoff_s(settings, n.attempts, rng)
        n.next_attempt_at = now + dt.timedelta(seconds=delay)
        log.warning("notification_retry_scheduled", notification_id=n.id, kind=n.kind,
                    channel=n.channel, attempts=n.attempts, retry_in_s=round(delay, 1),
                    error=message)
        result.retried += 1


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def deliver_notifications(ctx: Context, channels: Channels, *, stop: Stop = None,
                          owner: str | None = None, rng: random.Random | None = None,
                          limit: int | None = None) -> DeliveryResult:
    """Deliver every notice that is due now; return what happened.

    ``stop`` (a ``threading.Event`` or a callable) is checked between messages: set it and
    the pass ends after the message in hand. ``limit`` caps the messages tried in this pass.
    Safe to run in several processes at once (claims are leased; on PostgreSQL with
    ``SKIP LOCKED``).
    """
    settings = channels.settings
    owner = owner or default_owner()
    rng = rng or random.Random()
    result = DeliveryResult()
    available = sorted(channels.by_name)
    with ctx.sessions() as session:
        missing = dict(session.execute(
            select(Notification.channel, func.count())
            .where(Notification.state == "pending", Notification.next_attempt_at <= ctx.clock.now(),
                   Notification.channel.not_in(available))
            .group_by(Notification.channel)).all())
    for name, count in missing.items():
        log.warning("notification_channel_not_configured", channel=name, pending=count,
                    hint="configure [notify.smtp]" if name == "email" else None)
        result.skipped += count
    tried = 0
    seen: set[int] = set()
    while not _stopped(stop) and (limit is None or tried < limit):
        ids = _claim(ctx, owner, available, settings.lease_s, seen)
        if not ids:
            break
        for nid in ids:
            if _stopped(stop) or (limit is not None and tried >= limit):
                _release(ctx, [nid], owner)
                continue
            seen.add(nid)
            tried += 1
            error: DeliveryError | None = None
            receipt = ""
            try:
                with ctx.sessions() as session:
                    n = session.get_one(Notification, nid)
                    message = build_outgoing(session, n, settings, now=ctx.clock.now())
            except Exception as exc:  # a notice that cannot be built is given up, with an alert
                log.exception("notification_unbuildable", notification_id=nid)
                _finish(ctx, nid, settings, PermanentDeliveryError(
                    f"the message cannot be built: {type(exc).__name__}"), "", rng, result)
                continue
            channel = channels.by_name[message.channel]
            try:
                receipt = channel.send(message)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # an unexpected failure of a channel is retried, not lost
                error = DeliveryError(f"{type(exc).__name__}: {exc}")
            _finish(ctx, nid, settings, error, receipt, rng, result)
    return result


def _release(ctx: Context, ids: list[int], owner: str) -> None:
    with ctx.sessions.begin() as session:
        session.execute(update(Notification).where(Notification.id.in_(ids),
                                                   Notification.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None)
                        .execution_options(synchronize_session=False))


@dataclass(frozen=True, kw_only=True)
class NotificationView:
    id: int
    kind: str
    about: str
    controller: str | None
    channel: str
    target: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"id": self.id, "kind": self.kind, "about": self.about,
                "controller": self.controller, "channel": self.channel, "target": self.target,
                "state": self.state, "attempts": self.attempts,
                "next_attempt_at": iso(self.next_attempt_at), "last_error": self.last_error,
                "created_at": iso(self.created_at), "delivered_at": iso(self.delivered_at)}


def _view(session: Session, n: Notification) -> NotificationView:
    code = session.scalar(select(Controller.code).where(Controller.id == n.controller_id)) \
        if n.controller_id else None
    return NotificationView(
        id=n.id, kind=n.kind, about=_about(session, n), controller=code, channel=n.channel,
        target=n.target, state=n.state, attempts=n.attempts,
        next_attempt_at=n.next_attempt_at if n.state == "pending" else None,
        last_error=n.last_error, created_at=n.created_at, delivered_at=n.delivered_at)


def list_notifications(ctx: Context, *, state: str | None = None, certificate_id: int | None = None,
                       limit: int | None = None) -> list[NotificationView]:
    """Outbox rows, newest first."""
    if state is not None and state not in STATES:
        raise LifecycleError(f"unknown state {state!r} (one of: {', '.join(STATES)})")
    with ctx.sessions() as session:
        query = select(Notification).order_by(Notification.id.desc())
        if state is not None:
            query = query.where(Notification.state == state)
        if certificate_id is not None:
            query = query.where(Notification.certificate_id == certificate_id)
        if limit is not None:
            query = query.limit(limit)
        return [_view(session, n) for n in session.scalars(query)]


def resend(ctx: Context, notification_id: int) -> NotificationView:
    """Send a notice again. A dead (or still pending) one is retried now from a fresh count of
    tries, to the controller's current address; a delivered one is queued again as a new
    notice with its own idempotency key (the receiver asked for it again)."""
    from retentiond.notify.recipients import controller_channels
    from retentiond.registry.models import ControllerSettings

    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        n = session.get(Notification, notification_id, with_for_update=True)
        if n is None:
            raise LifecycleError(f"no notification {notification_id}")
        target = n.target
        if n.controller_id is not None:
            controller = session.get_one(Controller, n.controller_id)
            current = dict(controller_channels(controller,
                                               session.get(ControllerSettings, controller.id)))
            target = current.get(n.channel, n.target)
        if n.state == "delivered":
            count = session.scalar(select(func.count()).select_from(Notification).where(
                Notification.idempotency_key.like(f"{n.idempotency_key}:resend-%"))) or 0
            again = Notification(
                kind=n.kind, certificate_id=n.certificate_id,
                advance_notice_id=n.advance_notice_id, controller_id=n.controller_id,
                channel=n.channel, target=target, state="pending", attempts=0,
                next_attempt_at=now, idempotency_key=f"{n.idempotency_key}:resend-{count + 1}",
                payload=n.payload, created_at=now, updated_at=now)
            session.add(again)
            session.flush()
            record_event(session, kind="NotificationResent", actor=ctx.actor,
                         entity="notification", entity_id=n.id, at=now,
                         data={"new_notification": again.id, "target_changed": target != n.target})
            return _view(session, again)
        n.state, n.attempts, n.next_attempt_at = "pending", 0, now
        n.lease_owner = n.lease_until = None
        n.target, n.updated_at = target, now
        record_event(session, kind="NotificationResent", actor=ctx.actor, entity="notification",
                     entity_id=n.id, at=now, data={"previous_error": n.last_error})
        return _view(session, n)
