"""Local accounts: users, their roles and argon2 password hashes.

Used by ``retentiond users ...`` and by the admin's users page. Every change is an audit event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.models import ApiToken, Controller, WebSession, WebUser
from retentiond.web.roles import TOKEN_ONLY_ROLES, parse_roles
from retentiond.web.usernames import UsernameError, check_username, username_key

#: How a user signs in: the one way (``WebUser.auth_method``).
AUTH_METHODS = ("password", "oidc")

MIN_PASSWORD = 12
_hasher = PasswordHasher()
#: Verified against when the user does not exist, so that timing does not tell who exists.
_DUMMY_HASH = _hasher.hash("retentiond-no-such-user")


def hash_password(password: str) -> str:
    """An argon2id hash with the library's current parameters."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; a missing hash costs the same time."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def check_password_strength(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise LifecycleError(f"a password needs at least {MIN_PASSWORD} characters")
    if password.lower() == username.lower():
        raise LifecycleError("a password cannot be the user name")


@dataclass(frozen=True, kw_only=True)
class UserView:
    """A user as the CLI and the users page show it (never the hash)."""

    id: int
    username: str
    display_name: str | None
    roles: tuple[str, ...]
    controller: str | None
    disabled: bool
    has_password: bool
    #: ``password`` or ``oidc``: the one way the user signs in.
    auth_method: str
    created_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "display_name": self.display_name,
                "roles": list(self.roles), "controller": self.controller,
                "disabled": self.disabled, "has_password": self.has_password,
                "auth_method": self.auth_method, "created_at": self.created_at.isoformat()}


def _view(session: Session, user: WebUser) -> UserView:
    code = session.scalar(select(Controller.code).where(Controller.id == user.controller_id)) \
        if user.controller_id else None
    return UserView(id=user.id, username=user.username, display_name=user.display_name,
                    roles=tuple(sorted(user.roles.split(","))), controller=code,
                    disabled=user.disabled_at is not None,
                    has_password=user.password_hash is not None, auth_method=user.auth_method,
                    created_at=user.created_at)


def find_user(session: Session, name: str, *, lock: bool = False) -> WebUser | None:
    """The user whose name is ``name`` up to case, width and invisible characters (the same
    person however the name is typed), or None."""
    query = select(WebUser).where(WebUser.username_key == username_key(name))
    return session.scalar(query.with_for_update() if lock else query)


def _get(session: Session, username: str) -> WebUser:
    user = find_user(session, username, lock=True)
    if user is None:
        raise LifecycleError(f"no user {username!r}")
    return user


def add_user(ctx: Context, *, username: str, roles: str, password: str | None,
             controller: str | None = None, display_name: str | None = None) -> UserView:
    """Create a user. With a password the user signs in with it, and only with it; without
    one, only through OpenID Connect. The name must be allowed (``retentiond.web.usernames``)
    and differ from every other user's by more than case, width or invisible characters."""
    try:
        username = check_username(username)
    except UsernameError as exc:
        raise LifecycleError(str(exc)) from None
    try:
        role_set = parse_roles(roles)
    except ValueError as exc:
        raise LifecycleError(str(exc)) from None
    if ("controller" in role_set) != (controller is not None):
        raise LifecycleError("a controller user needs --controller CODE, and only a controller "
                             "user may have one")
    if password is not None and role_set & TOKEN_ONLY_ROLES:
        raise LifecycleError("a feeder acts through API tokens only: add it without a password "
                             "(--oidc-only) and give it a token ('users token')")
    if password is not None:
        check_password_strength(password, username)
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        # The unique key makes a second account impossible whatever the route; this says why.
        same = find_user(session, username)
        if same is not None:
            also = "" if same.username == username else f" (as {same.username!r})"
            raise LifecycleError(f"user {username!r} exists already{also}: names that differ "
                                 "only in case or width are one person's")
        controller_id = None
        if controller is not None:
            controller_id = session.scalar(select(Controller.id).where(Controller.code == controller))
            if controller_id is None:
                raise LifecycleError(f"no controller {controller!r}")
        user = WebUser(username=username, username_key=username_key(username),
                       auth_method="password" if password is not None else "oidc",
                       display_name=display_name,
                       roles=",".join(sorted(role_set)), controller_id=controller_id,
                       password_hash=hash_password(password) if password else None,
                       created_at=now, updated_at=now)
        session.add(user)
        session.flush()
        record_event(session, kind="UserAdded", actor=ctx.actor, entity="user",
                     entity_id=username, at=now,
                     data={"roles": sorted(role_set), "controller": controller,
                           "auth_method": user.auth_method})
        return _view(session, user)


def _revoke_all(session: Session, user_id: int, now: dt.datetime) -> None:
    session.execute(update(WebSession).where(WebSession.user_id == user_id,
                                             WebSession.revoked_at.is_(None))
                    .values(revoked_at=now))


def disable_user(ctx: Context, username: str) -> UserView:
    """Disable a user: their sessions and API tokens stop working at once."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        user = _get(session, username)
        if user.disabled_at is None:
            user.disabled_at, user.updated_at = now, now
            _revoke_all(session, user.id, now)
            session.execute(update(ApiToken).where(ApiToken.user_id == user.id,
                                                   ApiToken.revoked_at.is_(None))
                            .values(revoked_at=now))
            record_event(session, kind="UserDisabled", actor=ctx.actor, entity="user",
                         entity_id=user.username, at=now)
        return _view(session, user)


def reset_password(ctx: Context, username: str, password: str) -> UserView:
    """Set a new password (and enable the user again); their open sessions are revoked. A
    user who signs in through OpenID Connect has no password here and gets none."""
    check_password_strength(password, username)
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        user = _get(session, username)
        if set(user.roles.split(",")) & TOKEN_ONLY_ROLES:
            raise LifecycleError("a feeder acts through API tokens only: it has no password")
        if user.auth_method != "password":
            raise LifecycleError(f"user {user.username!r} signs in through OpenID Connect, not "
                                 "with a password: there is no password to reset")
        user.password_hash, user.disabled_at, user.updated_at = hash_password(password), None, now
        _revoke_all(session, user.id, now)
        record_event(session, kind="UserPasswordReset", actor=ctx.actor, entity="user",
                     entity_id=user.username, at=now)
        return _view(session, user)


def revoke_sessions(ctx: Context, username: str) -> int:
    """Sign a user out everywhere; return how many sessions were open."""
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        user = _get(session, username)
        result = session.execute(
            update(WebSession).where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
            .values(revoked_at=now))
        count = int(getattr(result, "rowcount", 0) or 0)
        record_event(session, kind="UserSessionsRevoked", actor=ctx.actor, entity="user",
                     entity_id=user.username, at=now, data={"sessions": count})
        return count


def list_users(ctx: Context) -> list[UserView]:
    """Every user, by name."""
    with ctx.sessions() as session:
        return [_view(session, u) for u in session.scalars(select(WebUser).order_by(WebUser.username))]
