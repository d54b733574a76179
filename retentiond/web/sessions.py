"""Server-side sessions and API tokens.

The browser's cookie and a machine's bearer token are random secrets; the registry keeps only
their SHA-256, so a copy of the database cannot be used to sign in. A session ends when it is
revoked, when it has been idle too long, or at its absolute limit, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.models import ApiToken, Controller, WebSession, WebUser
from retentiond.web.roles import Principal
from retentiond.web.settings import WebSettings

TOKEN_PREFIX = "rtd_"
#: ``last_seen_at`` is written at most this often, so that reading pages does not write rows.
TOUCH_EVERY = dt.timedelta(seconds=60)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _principal(session: Session, user: WebUser, *, via: str, session_id: int | None = None,
               csrf: str | None = None) -> Principal:
    code = None
    if user.controller_id is not None:
        code = session.scalar(select(Controller.code).where(Controller.id == user.controller_id))
    return Principal(user_id=user.id, username=user.username,
                     roles=frozenset(r for r in user.roles.split(",") if r),
                     controller_id=user.controller_id, controller_code=code, via=via,
                     session_id=session_id, csrf_token=csrf)


def start_session(session: Session, user: WebUser, *, method: str, now: dt.datetime,
                  settings: WebSettings) -> str:
    """Open a session for ``user`` inside the caller's transaction; return the cookie value."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(
        token_hash=digest(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
        auth_method=method, created_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_absolute_hours),
    ))
    return token


def resolve_session(session: Session, token: str, *, now: dt.datetime,
                    settings: WebSettings) -> Principal | None:
    """The principal of a live session, or None (unknown, revoked, idle, expired, disabled)."""
    row = session.execute(
        select(WebSession, WebUser).join(WebUser, WebUser.id == WebSession.user_id)
        .where(WebSession.token_hash == digest(token))
    ).one_or_none()
    if row is None:
        return None
    web_session, user = row
    idle = dt.timedelta(minutes=settings.session_idle_minutes)
    if (web_session.revoked_at is not None or user.disabled_at is not None
            or now >= web_session.expires_at or now - web_session.last_seen_at >= idle):
        if web_session.revoked_at is None:
            web_session.revoked_at = now
        return None
    if now - web_session.last_seen_at >= TOUCH_EVERY:
        web_session.last_seen_at = now
    return _principal(session, user, via="session", session_id=web_session.id,
                      csrf=web_session.csrf_token)


def end_session(session: Session, session_id: int, now: dt.datetime) -> None:
    web_session = session.get(WebSession, session_id)
    if web_session is not None and web_session.revoked_at is None:
        web_session.revoked_at = now


def create_token(ctx: Context, username: str, *, name: str,
                 expires_at: dt.datetime | None = None) -> str:
    """A new API token for ``username``; the secret is returned once and never stored."""
    if not name.strip():
        raise LifecycleError("name the token (what uses it)")
    now = ctx.clock.now()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ctx.sessions.begin() as session:
        user = session.scalar(select(WebUser).where(WebUser.username == username))
        if user is None:
            raise LifecycleError(f"no user {username!r}")
        if user.disabled_at is not None:
            raise LifecycleError(f"user {username!r} is disabled")
        api_token = ApiToken(user_id=user.id, name=name.strip(), token_hash=digest(token),
                             created_at=now, expires_at=expires_at)
        session.add(api_token)
        session.flush()
        record_event(session, kind="ApiTokenCreated", actor=ctx.actor, entity="user",
                     entity_id=username, at=now, data={"token_id": api_token.id, "name": name})
    return token


def resolve_token(session: Session, token: str, *, now: dt.datetime) -> Principal | None:
    """The principal an API token acts as, or None (unknown, revoked, expired, disabled)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(
        select(ApiToken, WebUser).join(WebUser, WebUser.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(token))
    ).one_or_none()
    if row is None:
        return None
    api_token, user = row
    if (api_token.revoked_at is not None or user.disabled_at is not None
            or (api_token.expires_at is not None and now >= api_token.expires_at)):
        return None
    if api_token.last_used_at is None or now - api_token.last_used_at >= TOUCH_EVERY:
        api_token.last_used_at = now
    return _principal(session, user, via="token")
