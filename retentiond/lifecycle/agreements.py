"""Agreements and their termination (seed 003, clause 13.1; DESIGN.md section 3, rule 9)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.recompute import recompute_where, withdraw_stale_cases
from retentiond.policy.dates import DateOutOfRange, add_period
from retentiond.policy.model import Period
from retentiond.registry.models import Agreement, Record

NOTICES = {"1m": 1, "3m": 3}


@dataclass(frozen=True, kw_only=True)
class Termination:
    records: int
    due_on: dt.date
    changed: int


def add_agreement(ctx: Context, *, code: str, title: str, notice: str = "1m",
                  action: str = "return", starts_on: dt.date | None = None) -> None:
    """Record an agreement (or update its title, notice and action while it is active)."""
    if notice not in NOTICES:
        raise LifecycleError(f"notice {notice!r} is not one of {', '.join(NOTICES)}")
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        found = session.scalar(select(Agreement).where(Agreement.code == code))
        if found is None:
            session.add(Agreement(code=code, title=title, status="active", starts_on=starts_on,
                                  notice_months=NOTICES[notice], termination_action=action,
                                  created_at=now, updated_at=now))
            kind = "AgreementAdded"
        elif found.status != "active":
            raise LifecycleError(f"agreement {code} is {found.status}: it cannot be changed")
        else:
            found.title, found.notice_months = title, NOTICES[notice]
            found.termination_action, found.starts_on, found.updated_at = action, starts_on, now
            kind = "AgreementUpdated"
        record_event(session, kind=kind, actor=ctx.actor, entity="agreement", entity_id=code,
                     at=now, data={"notice": notice, "termination_action": action})


#: Queues, in the termination's own transaction, the notices that tell each controller what
#: comes back (``notify.termination.termination_notices``); returns how many it queued. A
#: parameter rather than an import: the notices are the outbox's business, and ``notify``
#: builds on ``lifecycle``, not the other way round.
TerminationNotices = Callable[[Session, Agreement, dt.datetime], int]


def terminate_agreement(ctx: Context, code: str, *, on: dt.date, notice: str | None = None,
                        notices: TerminationNotices | None = None) -> Termination:
    """Terminate: every record provided under it becomes due on ``on`` plus the notice, with
    the agreement's action, unless a rule already makes it due sooner. With ``notices``
    (``notify.termination.termination_notices``, which the command line passes), each
    controller with records under it is told at once what comes back, how and by when
    (clause 13.1): the notices are queued in the same transaction."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        agreement = session.scalar(select(Agreement).where(Agreement.code == code)
                                   .with_for_update())
        if agreement is None:
            raise LifecycleError(f"no agreement {code!r}")
        months = NOTICES[notice] if notice else agreement.notice_months
        try:
            due_on = add_period(on, Period(months=months))
        except DateOutOfRange as exc:
            raise LifecycleError(f"--on {on.isoformat()}: {exc}") from None
        if agreement.status == "terminated":
            if (agreement.terminated_on, agreement.disposal_due_on) == (on, due_on):
                count = session.scalar(select(func.count()).select_from(Record)
                                       .where(Record.agreement_id == agreement.id))
                return Termination(records=int(count or 0), due_on=due_on, changed=0)
            raise LifecycleError(f"agreement {code} was already terminated on "
                                 f"{agreement.terminated_on}")
        agreement.status, agreement.terminated_on = "terminated", on
        agreement.notice_months, agreement.disposal_due_on = months, due_on
        agreement.updated_at = now
        record_event(session, kind="AgreementTerminated", actor=ctx.actor, entity="agreement",
                     entity_id=code, at=now, reason=f"terminated on {on} with {months} "
                     "month(s) notice (clause 13.1)",
                     data={"terminated_on": on.isoformat(), "due_on": due_on.isoformat(),
                           "action": agreement.termination_action})
        session.flush()
        changed = recompute_where(ctx, session, Record.agreement_id == agreement.id)
        withdraw_stale_cases(ctx, session)
        session.flush()
        queued = notices(session, agreement, now) if notices is not None else 0
        if queued:
            record_event(session, kind="NotificationsQueued", actor=ctx.actor,
                         entity="agreement", entity_id=code, at=now,
                         reason="termination notices (clause 13.1)", data={"notices": queued})
        count = session.scalar(select(func.count()).select_from(Record)
                               .where(Record.agreement_id == agreement.id))
    return Termination(records=int(count or 0), due_on=due_on, changed=changed)
