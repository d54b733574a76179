"""Who is asking, and may they: authentication, the route rules, CSRF, sign-in.

``authorise`` runs before every route of the app (a global dependency). It looks the route up
in ``roles.ROUTE_RULES`` (no rule: refused), finds the principal from the session cookie or a
bearer token, checks the permission, and on a state-changing request through a cookie checks
the CSRF token. Endpoints then read ``request.state.principal``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from retentiond.audit import record_event
from retentiond.clock import Clock
from retentiond.config import Config
from retentiond.lifecycle.context import Context
from retentiond.logs import get_logger
from retentiond.policy import PolicySet
from retentiond.registry.models import WebUser
from retentiond.web import throttle
from retentiond.web.accounts import find_user, hash_password, needs_rehash, verify_password
from retentiond.web.roles import PUBLIC, ROUTE_RULES, SIGNED_IN_SESSION, TOKEN_ONLY_ROLES, Principal
from retentiond.web.sessions import resolve_session, resolve_token, start_session
from retentiond.web.settings import WebSettings
from retentiond.web.usernames import username_key

if TYPE_CHECKING:
    from retentiond.connectors import ConnectorRegistry

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_CSRF_COOKIE = "retentiond_login_csrf"
log = get_logger("retentiond.web")


@dataclass(kw_only=True)
class WebState:
    """What every request shares: configuration, the registry, the policy in force, a clock."""

    cfg: Config
    settings: WebSettings
    sessions: sessionmaker[Session]
    policy: PolicySet
    clock: Clock
    templates: Any
    export_key: bytes
    #: The holding systems' connectors: given to ``create_app`` (then its caller closes them),
    #: or loaded from ``[connectors]`` on first use (then the app closes them when it stops).
    connectors: ConnectorRegistry | None = None
    owns_connectors: bool = False
    _connectors_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def context(self, actor: str) -> Context:
        return Context(sessions=self.sessions, policy=self.policy, clock=self.clock, actor=actor)

    def holding_connectors(self) -> ConnectorRegistry:
        """The connectors (none is an empty registry: a configuration without
        ``[connectors]``). Building them connects to nothing. Raises ``ConfigError`` when the
        configuration's connectors cannot be built; asked again on the next call."""
        with self._connectors_lock:
            if self.connectors is None:
                from retentiond.connectors import load_connectors

                self.connectors = load_connectors(self.cfg)
                self.owns_connectors = True
            return self.connectors

    def close_connectors(self) -> None:
        with self._connectors_lock:
            if self.connectors is not None and self.owns_connectors:
                self.connectors.close()
                self.connectors, self.owns_connectors = None, False


class LoginRequired(Exception):
    """No valid session or token: pages redirect to sign-in, the API answers 401."""


class Denied(Exception):
    """Signed in, but the role does not allow this (or a CSRF token is missing or wrong).
    ``permission`` names what was missing, for a page to say in words."""

    def __init__(self, message: str, *, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def current(request: Request) -> Principal:
    """The principal ``authorise`` found (every non-public route has one)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise LoginRequired()
    return principal


def context_for(request: Request) -> Context:
    """A lifecycle context acting as the signed-in user (their name goes into the audit)."""
    return web_state(request).context(current(request).username)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def authenticate(request: Request) -> Principal | None:
    """The principal from a bearer token or the session cookie, or None."""
    state = web_state(request)
    now = state.clock.now()
    header = request.headers.get("authorization", "")
    cookie = request.cookies.get(state.settings.session_cookie)
    if not header and not cookie:
        return None
    with state.sessions.begin() as session:
        if header.lower().startswith("bearer "):
            return resolve_token(session, header[7:].strip(), now=now)
        if cookie:
            return resolve_session(session, cookie, now=now, settings=state.settings)
    return None


def _audit(request: Request, kind: str, actor: str, entity: str, entity_id: str,
           data: dict[str, Any] | None = None, reason: str | None = None) -> None:
    state = web_state(request)
    with state.sessions.begin() as session:
        record_event(session, kind=kind, actor=actor, entity=entity, entity_id=entity_id,
                     at=state.clock.now(), reason=reason, policy_version=state.policy.version,
                     data=data)


def audit(request: Request, kind: str, entity: str, entity_id: object,
          data: dict[str, Any] | None = None) -> None:
    """Record a read (a record viewed, an export) as the signed-in user."""
    _audit(request, kind, current(request).username, entity, str(entity_id), data)


async def _csrf_ok(request: Request, expected: str | None) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    return bool(expected and sent and secrets.compare_digest(sent, expected))


async def authorise(request: Request) -> None:
    """The app-wide gate (see the module's docstring)."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    rule = ROUTE_RULES.get(name or "")
    if rule is None:
        log.error("route_without_rule", route=name)
        raise Denied("this address has no authorisation rule")
    principal = await run_in_threadpool(authenticate, request)
    request.state.principal = principal
    if rule == PUBLIC:
        return
    if principal is None:
        raise LoginRequired()
    if principal.roles & TOKEN_ONLY_ROLES and principal.via != "token":
        # A feeder's session (an OpenID Connect sign-in of its name) opens nothing.
        await run_in_threadpool(_audit, request, "AccessDenied", principal.username, "route",
                                name or "", {"method": request.method, "path": request.url.path,
                                             "why": "feeder without a token"})
        raise Denied("this account acts through API tokens only")
    if not principal.can(rule):
        await run_in_threadpool(_audit, request, "AccessDenied", principal.username, "route",
                                name or "", {"method": request.method, "path": request.url.path})
        if rule == SIGNED_IN_SESSION:
            raise Denied("an API token cannot do this: sign in to the service in a browser",
                         permission=rule)
        raise Denied(f"your role does not allow this ({rule})", permission=rule)
    if (request.method not in SAFE_METHODS and principal.via == "session"
            and not await _csrf_ok(request, principal.csrf_token)):
        raise Denied("the form had expired or did not come from this service: go back, "
                     "reload the page and try again")


# --- password sign-in ---------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SignIn:
    """The outcome of a sign-in: a session cookie value, or an error for the form."""

    token: str | None = None
    error: str | None = None


def password_sign_in(request: Request, username: str, password: str) -> SignIn:
    """Check a user name and password, with throttling; audit the outcome either way.

    The attempt is noted (as a failure, under the sign-in lock) before the password is
    checked, so concurrent tries cannot all slip under the limit; the check itself (argon2,
    slow on purpose) runs outside any transaction. The name is matched, and throttled, by its
    key (``APPROVER1`` is ``approver1``); only a user created with a password signs in here.
    """
    state = web_state(request)
    now = state.clock.now()
    client = client_address(request)
    username = username.strip()
    key = username_key(username)[:200]
    with state.sessions.begin() as session:
        throttle.lock(session)
        wait = throttle.retry_after(session, username=key, client=client, now=now,
                                    settings=state.settings)
        if wait is not None:
            minutes = max(1, int((wait - now).total_seconds() // 60) + 1)
            record_event(session, kind="SignInThrottled", actor=username or "-", entity="user",
                         entity_id=username or "-", at=now, data={"method": "password"})
            return SignIn(error=f"Too many failed attempts. Try again in {minutes} minutes.")
        attempt = throttle.note_attempt(session, username=key, client=client, now=now,
                                        succeeded=False, settings=state.settings)
        user = find_user(session, username)
        user_id, stored, method = ((user.id, user.password_hash, user.auth_method)
                                   if user is not None else (None, None, None))
    # A user who signs in through OpenID Connect has no password here, whatever the column
    # holds: checked against nothing (the same time as a wrong password), and refused.
    ok = verify_password(stored if method == "password" else None, password)
    with state.sessions.begin() as session:
        user = session.get(WebUser, user_id) if user_id is not None else None
        why = ("not a password user: signs in through OpenID Connect"
               if user is not None and method != "password"
               else "wrong user name or password" if not ok or user is None
               else "disabled" if user.disabled_at is not None
               else "password changed meanwhile" if user.password_hash != stored else None)
        if why is not None or user is None:
            record_event(session, kind="SignInFailed", actor=username or "-", entity="user",
                         entity_id=username or "-", at=now,
                         data={"method": "password", "why": why})
            return SignIn(error="The user name or password is not right, or the account is "
                                "disabled.")
        assert user.password_hash is not None
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        throttle.mark_succeeded(session, attempt)
        token = start_session(session, user, method="password", now=now, settings=state.settings)
        record_event(session, kind="UserSignedIn", actor=user.username, entity="user",
                     entity_id=user.username, at=now, data={"method": "password"})
    return SignIn(token=token)


def sign_in_user(request: Request, username: str, method: str) -> SignIn:
    """Open a session for a user an external provider vouched for (OpenID Connect): the
    user whose name has the claim's key, created to sign in this way (a password user's
    name in a provider's claim opens nothing)."""
    state = web_state(request)
    now = state.clock.now()
    with state.sessions.begin() as session:
        user = find_user(session, username)
        if user is not None and user.auth_method != method and user.disabled_at is None:
            record_event(session, kind="SignInFailed", actor=username[:200], entity="user",
                         entity_id=username[:200], at=now,
                         data={"method": method, "why": "the user signs in with a password"})
            return SignIn(error=f"{username} signs in to this service with a password, not "
                                "through your organisation. Use the password form, or ask an "
                                "administrator.")
        if user is None or user.disabled_at is not None:
            record_event(session, kind="SignInFailed", actor=username[:200], entity="user",
                         entity_id=username[:200], at=now,
                         data={"method": method, "why": "no such user here, or disabled"})
            return SignIn(error=f"{username} has no account in this service, or it is "
                                "disabled. Ask an administrator to add you.")
        token = start_session(session, user, method=method, now=now, settings=state.settings)
        record_event(session, kind="UserSignedIn", actor=user.username, entity="user",
                     entity_id=user.username, at=now, data={"method": method})
    return SignIn(token=token)


def sign_in_refused(request: Request, *, method: str, why: str) -> None:
    """Audit a sign-in refused before anyone was identified (OpenID Connect: a bad state,
    a token that failed its checks). ``why`` names the check, never personal data."""
    _audit(request, "SignInFailed", "-", "user", "-", {"method": method, "why": why[:200]})


def set_session_cookie(response: Any, state: WebState, token: str) -> None:
    response.set_cookie(
        state.settings.session_cookie, token, httponly=True, secure=state.settings.cookie_secure,
        samesite=state.settings.cookie_samesite, path="/",
        max_age=state.settings.session_absolute_hours * 3600,
    )


def clear_session_cookie(response: Any, state: WebState) -> None:
    response.delete_cookie(state.settings.session_cookie, path="/",
                           secure=state.settings.cookie_secure, httponly=True,
                           samesite=state.settings.cookie_samesite)


def now_utc(request: Request) -> dt.datetime:
    return web_state(request).clock.now()
