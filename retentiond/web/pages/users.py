"""Users (admin): who can sign in, with what roles; disable, sign out everywhere, API tokens.
Users are added with ``retentiond users add``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.web.accounts import disable_user, list_users, revoke_sessions
from retentiond.web.auth import context_for
from retentiond.web.pages.common import FieldError, redirect, render
from retentiond.web.sessions import create_token

router = APIRouter(include_in_schema=False)


def _users_view(request: Request, **extra: object) -> HTMLResponse:
    users = list_users(context_for(request))
    return render(request, "users.html", title="Users", users=users, **extra)  # type: ignore[arg-type]


@router.get("/users", name="users_page")
def users_page(request: Request) -> HTMLResponse:
    return _users_view(request)


@router.post("/users/{username}/disable", name="users_disable")
def users_disable(request: Request, username: str) -> Response:
    try:
        disable_user(context_for(request), username)
    except LifecycleError as exc:
        return redirect("/users", flash=str(exc), kind="important")
    return redirect("/users", flash=f"{username} is disabled and signed out everywhere.")


@router.post("/users/{username}/revoke-sessions", name="users_revoke_sessions")
def users_revoke_sessions(request: Request, username: str) -> Response:
    try:
        n = revoke_sessions(context_for(request), username)
    except LifecycleError as exc:
        return redirect("/users", flash=str(exc), kind="important")
    return redirect("/users", flash=f"{username} is signed out of {n} session(s).")


@router.post("/users/{username}/tokens", name="users_create_token")
async def users_create_token(request: Request, username: str) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")
    try:
        token = await run_in_threadpool(create_token, context_for(request), username, name=name)
    except LifecycleError as exc:
        errors = [FieldError(f"token-{username}", str(exc))]
        return await run_in_threadpool(lambda: _users_view(request, errors=errors, error_summary=errors,
                                                           status_code=400))
    # Shown once, on this response only: it is never stored and never put in a cookie.
    return await run_in_threadpool(lambda: _users_view(request, new_token=token, token_user=username))
