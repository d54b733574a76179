"""``/api/v1/tokens``: the caller's API tokens (an administrator's: anyone's), made and revoked.

A token is made by its own user only, in a browser session (never by another token); an
administrator lists and revokes anyone's, and makes none for anyone else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import ApiToken, ApiTokens, CreateTokenRequest, NewApiToken
from retentiond.web.auth import context_for, current
from retentiond.web.roles import MANAGE_USERS
from retentiond.web.sessions import list_tokens, new_token, revoke_token

router = APIRouter(prefix="/api/v1", tags=["tokens"], responses=ERRORS)


@router.get("/tokens", name="api_tokens", response_model=ApiTokens)
def api_tokens(request: Request, all: bool = False) -> ApiTokens:
    """The caller's tokens, newest first; with ``all=true`` (administrators) everyone's."""
    principal = current(request)
    if all and not principal.can(MANAGE_USERS):
        raise HTTPException(status_code=403, detail="only an administrator lists everyone's "
                                                    "tokens (manage_users)")
    views = list_tokens(context_for(request), None if all else principal.username)
    return ApiTokens(items=[ApiToken.model_validate(v.as_json()) for v in views])


@router.post("/tokens", name="api_tokens_create", response_model=NewApiToken, status_code=201)
async def api_tokens_create(request: Request, body: CreateTokenRequest) -> NewApiToken:
    """Make a token for the signed-in user (never for anyone else); its secret is in this
    response only."""
    principal = current(request)
    ctx = context_for(request)
    try:
        secret, view = await run_in_threadpool(lambda: new_token(
            ctx, principal.username, name=body.name, expires_at=body.expires_at))
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return NewApiToken(token=secret, item=ApiToken.model_validate(view.as_json()))


@router.post("/tokens/{token_id}/revoke", name="api_tokens_revoke", response_model=ApiToken)
async def api_tokens_revoke(request: Request,
                            token_id: Annotated[int, Path(ge=1, le=2**62)]) -> ApiToken:
    """Revoke one of the caller's tokens (an administrator: anyone's)."""
    principal = current(request)
    owner = None if principal.can(MANAGE_USERS) else principal.username
    try:
        view = await run_in_threadpool(revoke_token, context_for(request), token_id, owner=owner)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ApiToken.model_validate(view.as_json())
