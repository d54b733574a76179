"""Login throttling: too many failed passwords for one user name, or from one client, and
sign-in is refused for a while (whether or not the password is right)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from retentiond.registry.models import LoginAttempt
from retentiond.web.settings import WebSettings

#: A client (address) may fail this many times more than one user name before it is refused:
#: a shared office address must not lock everyone out after one person's typos.
CLIENT_FACTOR = 4


def retry_after(session: Session, *, username: str, client: str, now: dt.datetime,
                settings: WebSettings) -> dt.datetime | None:
    """When sign-in may be tried again, or None when it may be tried now."""
    window = now - dt.timedelta(minutes=settings.login_window_minutes)
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at))
        .where(LoginAttempt.username == username, LoginAttempt.succeeded.is_(True))
    )
    since = max(window, last_ok) if last_ok is not None else window
    for column, value, limit, after in (
        (LoginAttempt.username, username, settings.login_max_failures, since),
        (LoginAttempt.client, client, settings.login_max_failures * CLIENT_FACTOR, window),
    ):
        count, newest = session.execute(
            select(func.count(), func.max(LoginAttempt.at))
            .where(column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.at > after)
        ).one()
        if count >= limit and newest is not None:
            return newest + dt.timedelta(minutes=settings.login_window_minutes)
    return None


def note_attempt(session: Session, *, username: str, client: str, now: dt.datetime,
                 succeeded: bool, settings: WebSettings) -> None:
    """Remember one attempt; forget attempts older than a day (they throttle nothing)."""
    session.add(LoginAttempt(username=username[:200], client=client[:64], at=now,
                             succeeded=succeeded))
    keep = max(dt.timedelta(days=1), dt.timedelta(minutes=settings.login_window_minutes))
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - keep))
