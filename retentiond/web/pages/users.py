"""Users (admin): who can sign in, with what roles; disable, sign out everywhere; list and
revoke API tokens (never make one: a token is made by its own user, ``account.py``).
Users are added with ``retentiond users add``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from retentiond.lifecycle.context import LifecycleError
from retentiond.web.accounts import disable_user, list_users, revoke_sessions
from retentiond.web.auth import context_for
from retentiond.web.pages.common import redirect, render
from retentiond.web.sessions import list_tokens, revoke_token

router = APIRouter(include_in_schema=False)


def _users_view(request: Request, **extra: Any) -> HTMLResponse:
    ctx = context_for(request)
    users = list_users(ctx)
    tokens = list_tokens(ctx)
    return render(request, "users.html", title="Users", users=users, tokens=tokens,
                  **extra)


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


@router.post("/users/tokens/{token_id:int}/revoke", name="users_revoke_token")
def users_revoke_token(request: Request, token_id: int) -> Response:
    if token_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no API token {token_id}")
    try:
        view = revoke_token(context_for(request), token_id)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return redirect("/users", flash=f"API token {view.name!r} of {view.username} is revoked.")
