"""The signed-in user's own account: who they are, and their API tokens.

A user makes their own API tokens here, and only here or on the command line as themselves:
an administrator can list and revoke anyone's tokens (the users page), never make one for
someone else, since a token made for another person lets its maker act as them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.web.auth import context_for, current
from retentiond.web.pages.common import FieldError, redirect, render
from retentiond.web.sessions import list_tokens, new_token, revoke_token
from retentiond.web.wording import ROLE_LABELS

router = APIRouter(include_in_schema=False)


def _account_view(request: Request, **extra: Any) -> HTMLResponse:
    principal = current(request)
    tokens = list_tokens(context_for(request), principal.username)
    return render(request, "account.html", title="Your account", me=principal,
                  roles=", ".join(ROLE_LABELS.get(r, r) for r in sorted(principal.roles)),
                  tokens=tokens, **extra)


@router.get("/account", name="account_page")
def account_page(request: Request) -> HTMLResponse:
    return _account_view(request)


@router.post("/account/tokens", name="account_tokens_create")
async def account_tokens_create(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "")
    principal = current(request)
    try:
        secret, view = await run_in_threadpool(
            lambda: new_token(context_for(request), principal.username, name=name))
    except LifecycleError as exc:
        errors = [FieldError("token-name", str(exc))]
        return await run_in_threadpool(lambda: _account_view(
            request, errors=errors, error_summary=errors, status_code=400))
    # Shown once, on this response only: it is never stored and never put in a cookie.
    return await run_in_threadpool(lambda: _account_view(request, new_token=secret,
                                                         new_token_name=view.name))


@router.post("/account/tokens/{token_id:int}/revoke", name="account_tokens_revoke")
def account_tokens_revoke(request: Request, token_id: int) -> Response:
    if token_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no API token {token_id}")
    try:
        view = revoke_token(context_for(request), token_id, owner=current(request).username)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return redirect("/account", flash=f"API token {view.name!r} is revoked.")
