"""Server-side sessions and API tokens.

The browser's cookie and a machine's bearer token are random secrets; the registry keeps only
their SHA-256, so a copy of the database cannot be used to sign in. A session ends when it is
revoked, when it has been idle too long, or at its absolute limit, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError, required_text
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
    """A new API token for ``username``, made by that user (``ctx.actor``); the secret is
    returned once and never stored (:func:`new_token`, which also returns the token's view)."""
    return new_token(ctx, username, name=name, expires_at=expires_at)[0]


def new_token(ctx: Context, username: str, *, name: str,
              expires_at: dt.datetime | None = None) -> tuple[str, TokenView]:
    """A new API token for ``username``, made by that user (``ctx.actor``): its secret (never
    stored) and how lists show it.

    A token is made by its own user only: one made for someone else (an administrator for
    two approvers) would let its maker act as them, and approve alone what needs two people.
    Administrators list and revoke anyone's tokens, never make them.
    """
    name = required_text(name, "name the token (what uses it)")
    if username != ctx.actor:
        raise LifecycleError(
            f"a token is made by its own user only: {ctx.actor} cannot make one for "
            f"{username} (it would let {ctx.actor} act as {username}); {username} makes it "
            "on their account page, or on the command line as themselves")
    now = ctx.clock.now()
    if expires_at is not None and expires_at <= now:
        raise LifecycleError("the token's expiry must be in the future")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ctx.sessions.begin() as session:
        user = session.scalar(select(WebUser).where(WebUser.username == username))
        if user is None:
            raise LifecycleError(f"no user {username!r}")
        if user.disabled_at is not None:
            raise LifecycleError(f"user {username!r} is disabled")
        api_token = ApiToken(user_id=user.id, name=name, token_hash=digest(token),
                             issued_by=ctx.actor, created_at=now, expires_at=expires_at)
        session.add(api_token)
        session.flush()
        record_event(session, kind="ApiTokenCreated", actor=ctx.actor, entity="user",
                     entity_id=username, at=now,
                     data={"token_id": api_token.id, "name": name, **ctx.sod_data()})
        return token, _token_view(api_token, username)


@dataclass(frozen=True, kw_only=True)
class TokenView:
    """An API token as lists show it (never its secret, which is not stored)."""

    id: int
    username: str
    name: str
    issued_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {"id": self.id, "username": self.username, "name": self.name,
                "issued_by": self.issued_by, "created_at": self.created_at.isoformat(),
                "expires_at": iso(self.expires_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at)}


def _token_view(token: ApiToken, username: str) -> TokenView:
    return TokenView(id=token.id, username=username, name=token.name, issued_by=token.issued_by,
                     created_at=token.created_at, expires_at=token.expires_at,
                     last_used_at=token.last_used_at, revoked_at=token.revoked_at)


def list_tokens(ctx: Context, username: str | None = None) -> list[TokenView]:
    """API tokens, newest first: ``username``'s, or everyone's."""
    query = (select(ApiToken, WebUser.username).join(WebUser, WebUser.id == ApiToken.user_id)
             .order_by(ApiToken.id.desc()))
    if username is not None:
        query = query.where(WebUser.username == username)
    with ctx.sessions() as session:
        return [_token_view(t, u) for t, u in session.execute(query)]


def revoke_token(ctx: Context, token_id: int, *, owner: str | None = None) -> TokenView:
    """Revoke a token (at once, for every request after this one). With ``owner``, only
    that user's token: another's is answered as missing. Revoking twice is a no-op."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        found = session.execute(
            select(ApiToken, WebUser.username).join(WebUser, WebUser.id == ApiToken.user_id)
            .where(ApiToken.id == token_id)).one_or_none()
        if found is None or (owner is not None and found[1] != owner):
            raise LifecycleError(f"no API token {token_id}")
        api_token, username = found
        if api_token.revoked_at is None:
            api_token.revoked_at = now
            record_event(session, kind="ApiTokenRevoked", actor=ctx.actor, entity="user",
                         entity_id=username, at=now,
                         data={"token_id": api_token.id, "name": api_token.name})
        return _token_view(api_token, username)


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
    # A token acts with its owner's roles only when its owner made it: one made by anyone
    # else (written into the table by hand, or before this rule) authenticates nobody.
    if api_token.issued_by != user.username:
        return None
    if api_token.last_used_at is None or now - api_token.last_used_at >= TOUCH_EVERY:
        api_token.last_used_at = now
    return _principal(session, user, via="token")
