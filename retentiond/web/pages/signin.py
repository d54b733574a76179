"""Sign-in, sign-out, the user's own account page, and the front door."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.web import auth
from retentiond.web.auth import LOGIN_CSRF_COOKIE, current, web_state
from retentiond.web.pages.common import FieldError, redirect, render
from retentiond.web.roles import VIEW

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect to somewhere else."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, *, next_url: str, errors: list[FieldError] | None = None,
                username: str = "", status_code: int = 200) -> HTMLResponse:
    state = web_state(request)
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", title="Sign in", next_url=next_url, username=username,
                      login_csrf=token, error_summary=errors, errors=errors,
                      oidc=state.settings.oidc, status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, secure=state.settings.cookie_secure,
                        samesite="strict", path="/login", max_age=3600)
    return response


@router.get("/login", name="login_form")
def login_form(request: Request, next: str = "/") -> Response:
    if getattr(request.state, "principal", None) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_url=safe_next(next))


@router.post("/login", name="login_submit")
async def login_submit(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    state = web_state(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    next_url = safe_next(next)
    errors: list[FieldError] = []
    if not expected or not secrets.compare_digest(expected, csrf_token):
        errors.append(FieldError("username", "The sign-in form had expired. Try again."))
    if not username.strip():
        errors.append(FieldError("username", "Enter your user name"))
    if not password:
        errors.append(FieldError("password", "Enter your password"))
    if errors:
        return _login_page(request, next_url=next_url, errors=errors, username=username,
                           status_code=400)
    outcome = await run_in_threadpool(auth.password_sign_in, request, username, password)
    if outcome.token is None:
        return _login_page(request, next_url=next_url, username=username, status_code=400,
                           errors=[FieldError("username", outcome.error or "Sign-in failed")])
    response = RedirectResponse(next_url, status_code=303)
    auth.set_session_cookie(response, state, outcome.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    state = web_state(request)
    principal = current(request)
    if principal.session_id is not None:
        from retentiond.audit import record_event
        from retentiond.web.sessions import end_session

        with state.sessions.begin() as session:
            now = state.clock.now()
            end_session(session, principal.session_id, now)
            record_event(session, kind="UserSignedOut", actor=principal.username, entity="user",
                         entity_id=principal.username, at=now)
    response = redirect("/login", flash="You have signed out.")
    auth.clear_session_cookie(response, state)
    return response


@router.get("/", name="home")
def home(request: Request) -> Response:
    principal = current(request)
    return RedirectResponse("/dashboard" if principal.can(VIEW) else "/account", status_code=303)


@router.get("/account", name="account_page")
def account_page(request: Request) -> HTMLResponse:
    principal = current(request)
    from retentiond.web.wording import ROLE_LABELS

    return render(request, "account.html", title="Your account", me=principal,
                  roles=", ".join(ROLE_LABELS.get(r, r) for r in sorted(principal.roles)))


@router.get("/healthz", name="healthz")
def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")
