"""Advance notice of disposals: a controller that asked for N days' notice
(``retentiond controllers notice CODE --days N``) is told which of its records fall due within
N days, before anything is disposed of.

Each record is announced once for its due date: what was announced is kept
(``advance_notice_items``), so running this every day sends a notice only when there is
something new, listing only the new records. A record is announced again only if its due
date changes. Records under an active hold, deferred past the window, rejected for this due
date, or already disposed of are not announced.

Entry point for the daemon (daily) and the CLI::

    notices = send_advance_notices(ctx, issuer="Synthetic Borough Council")
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, insert, or_, select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.sql import DONE_STATES, hold_covers_record
from retentiond.logs import get_logger
from retentiond.notify.recipients import controller_channels
from retentiond.registry.models import (
    AdvanceNotice,
    AdvanceNoticeItem,
    Controller,
    ControllerSettings,
    Disposal,
    Notification,
    Record,
)

log = get_logger("retentiond.notify")

MAX_DAYS = 366


@dataclass(frozen=True, kw_only=True)
class AdvanceNoticeView:
    id: int
    controller: str
    as_of: dt.date
    window_days: int
    records: int
    notifications: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "controller": self.controller, "as_of": self.as_of.isoformat(),
                "window_days": self.window_days, "records": self.records,
                "notifications": self.notifications}


def set_notice(ctx: Context, code: str, *, days: int | None,
               channels: list[str] | None = None) -> dict[str, Any]:
    """Set a controller's advance notice (``days=None``: none) and, optionally, channels."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise LifecycleError(f"--days must be from 1 to {MAX_DAYS}")
    if channels is not None:
        bad = [c for c in channels if c not in ("email", "webhook")]
        if bad or not channels:
            raise LifecycleError("channels are email and/or webhook")
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        controller = session.scalar(select(Controller).where(Controller.code == code))
        if controller is None:
            raise LifecycleError(f"no controller {code}")
        settings = session.get(ControllerSettings, controller.id)
        if settings is None:
            settings = ControllerSettings(controller_id=controller.id, updated_by=ctx.actor,
                                          updated_at=now)
            session.add(settings)
        before = {"advance_notice_days": settings.advance_notice_days,
                  "channels": settings.channels}
        settings.advance_notice_days = days
        if channels is not None:
            settings.channels = ",".join(dict.fromkeys(channels))
        settings.updated_by, settings.updated_at = ctx.actor, now
        after = {"advance_notice_days": settings.advance_notice_days,
                 "channels": settings.channels}
        if after != before:
            record_event(session, kind="ControllerNotificationSettingsChanged", actor=ctx.actor,
                         entity="controller", entity_id=code, at=now,
                         data={"before": before, "after": after})
        return {"controller": code, **after}


def _candidates(session: Session, controller_id: int, as_of: dt.date,
                until: dt.date) -> list[tuple[int, str, str, dt.date, str | None, str | None]]:
    announced = exists().where(AdvanceNoticeItem.record_id == Record.id,
                               AdvanceNoticeItem.due_on == Record.due_on)
    done = exists().where(Disposal.record_id == Record.id, Disposal.state.in_(DONE_STATES))
    rows = session.execute(
        select(Record.id, Record.record_key, Record.category, Record.due_on, Record.due_action,
               Record.due_rule)
        .where(Record.controller_id == controller_id, Record.due_on.is_not(None),
               Record.due_on <= until,
               or_(Record.deferred_until.is_(None), Record.deferred_until <= until),
               or_(Record.rejected_due_on.is_(None), Record.rejected_due_on != Record.due_on),
               ~announced, ~done, ~hold_covers_record(session, as_of))
        .order_by(Record.due_on, Record.record_key)
    ).all()
    return [(rid, key, cat, due, action, rule) for rid, key, cat, due, action, rule in rows
            if due is not None]


def send_advance_notices(ctx: Context, *, issuer: str,
                         as_of: dt.date | None = None) -> list[AdvanceNoticeView]:
    """Queue one advance notice per controller that has unannounced records due within its
    window (one transaction per controller: the notice, what it announces, its outbox rows)."""
    as_of = as_of or ctx.clock.today()
    with ctx.sessions() as session:
        wanted = session.execute(
            select(ControllerSettings.controller_id, ControllerSettings.advance_notice_days)
            .where(ControllerSettings.advance_notice_days.is_not(None),
                   ControllerSettings.advance_notice_days > 0)
            .order_by(ControllerSettings.controller_id)).all()
    out = []
    for controller_id, days in wanted:
        view = _notice_one(ctx, controller_id, int(days or 0), as_of, issuer)
        if view is not None:
            out.append(view)
    return out


def _notice_one(ctx: Context, controller_id: int, days: int, as_of: dt.date,
                issuer: str) -> AdvanceNoticeView | None:
    now = ctx.clock.now()
    until = as_of + dt.timedelta(days=days)
    with ctx.sessions.begin() as session:
        controller = session.scalar(select(Controller).where(Controller.id == controller_id)
                                    .with_for_update())
        if controller is None:
            return None
        rows = _candidates(session, controller_id, as_of, until)
        if not rows:
            return None
        # No record's own due date: a pupil record's is the 25th birthday (docs/certificates.md,
        # "What a reader cannot work out"); the notice says they all fall due by ``until``.
        records = [{"record": key, "category": cat, "action": action or "review", "rule": rule}
                   for _rid, key, cat, _due, action, rule in rows]
        doc = {
            "type": "retentiond.advance-notice", "version": 1, "issuer": issuer,
            "controller": {"code": controller.code, "name": controller.name},
            "as_of": as_of.isoformat(), "window_days": days, "until": until.isoformat(),
            "records": records,
            "totals": {"records": len(records),
                       "by_category": dict(sorted(Counter(r["category"] for r in records).items()))},
        }
        notice = AdvanceNotice(controller_id=controller_id, as_of=as_of, window_days=days,
                               records=len(records), document=doc, created_at=now)
        session.add(notice)
        session.flush()
        session.execute(insert(AdvanceNoticeItem), [
            {"notice_id": notice.id, "record_id": rid, "due_on": due}
            for rid, _key, _cat, due, _a, _r in rows])
        channels = controller_channels(controller, session.get(ControllerSettings, controller_id))
        for channel, target in channels:
            session.add(Notification(
                kind="advance_notice", advance_notice_id=notice.id, controller_id=controller_id,
                channel=channel, target=target, state="pending", attempts=0, next_attempt_at=now,
                idempotency_key=f"advance:{controller.code}:{notice.id}:{channel}", payload={},
                created_at=now, updated_at=now))
        record_event(session, kind="AdvanceNoticeQueued", actor=ctx.actor, entity="controller",
                     entity_id=controller.code, at=now,
                     reason=f"{len(records)} records due by {until.isoformat()}",
                     data={"notice": notice.id, "records": len(records), "window_days": days,
                           "channels": [c for c, _ in channels]})
        log.info("advance_notice_queued", controller=controller.code, records=len(records),
                 window_days=days)
        return AdvanceNoticeView(id=notice.id, controller=controller.code, as_of=as_of,
                                 window_days=days, records=len(records),
                                 notifications=len(channels))
