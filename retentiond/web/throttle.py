"""Login throttling: too many failed passwords for one user name, or from one client, and
sign-in is refused for a while (whether or not the password is right).

An attempt is written down, as a failure, *before* its password is checked, in a transaction
that holds the sign-in lock while it counts and writes: concurrent tries see each other, so
60 tries at once against a limit of 5 make at most 5 password checks. A try whose password
turns out right is then marked as the success it was."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from retentiond.registry.db import write_lock_now
from retentiond.registry.models import LoginAttempt
from retentiond.web.settings import WebSettings

#: A client (address) may fail this many times more than one user name before it is refused:
#: a shared office address must not lock everyone out after one person's typos.
CLIENT_FACTOR = 4
#: PostgreSQL advisory lock serialising the count-and-write of sign-in attempts (in the
#: two-key space beside evaluation's (742100, 2)).
LOCK_KEY = (742100, 3)


def lock(session: Session) -> None:
    """Take the sign-in lock for the rest of ``session``'s transaction; call it first.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the database's write lock, taken
    now (``BEGIN IMMEDIATE``) rather than at the first write, so that two tries cannot both
    count before either writes. The critical section is a count and an insert: short."""
    if session.connection().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(*LOCK_KEY)))
    else:
        write_lock_now(session)


def retry_after(session: Session, *, username: str, client: str, now: dt.datetime,
                settings: WebSettings) -> dt.datetime | None:
    """When sign-in may be tried again, or None when it may be tried now.

    A user name's failures count from its last success (written after it, by id: attempts
    are written in order under the sign-in lock, and several may share one instant); a
    client's count whatever succeeded."""
    window = now - dt.timedelta(minutes=settings.login_window_minutes)
    last_ok = session.scalar(
        select(func.max(LoginAttempt.id))
        .where(LoginAttempt.username == username, LoginAttempt.succeeded.is_(True),
               LoginAttempt.at > window)
    )
    for column, value, limit, after_id in (
        (LoginAttempt.username, username, settings.login_max_failures, last_ok or 0),
        (LoginAttempt.client, client, settings.login_max_failures * CLIENT_FACTOR, 0),
    ):
        count, newest = session.execute(
            select(func.count(), func.max(LoginAttempt.at))
            .where(column == value, LoginAttempt.succeeded.is_(False), LoginAttempt.at > window,
                   LoginAttempt.id > after_id)
        ).one()
        if count >= limit and newest is not None:
            return newest + dt.timedelta(minutes=settings.login_window_minutes)
    return None


def note_attempt(session: Session, *, username: str, client: str, now: dt.datetime,
                 succeeded: bool, settings: WebSettings) -> int:
    """Remember one attempt (its id); forget attempts older than a day (they throttle
    nothing)."""
    attempt = LoginAttempt(username=username[:200], client=client[:64], at=now,
                           succeeded=succeeded)
    session.add(attempt)
    keep = max(dt.timedelta(days=1), dt.timedelta(minutes=settings.login_window_minutes))
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - keep))
    session.flush()
    return attempt.id


def mark_succeeded(session: Session, attempt_id: int) -> None:
    """The attempt noted (as a failure) before its password was checked was right."""
    session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id)
                    .values(succeeded=True))
