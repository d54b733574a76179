"""Sign-in through OpenID Connect (Entra ID or any standard provider), with Authlib.

Authorisation-code flow with PKCE, state and nonce. The provider vouches for who the person
is; what they may do comes from this service's own users table (``retentiond users add NAME
--role ...`` without a password): the claim named by ``[web.oidc] username_claim`` must equal
a user name here. The issuer must be tenant-specific (for Entra ID,
``https://login.microsoftonline.com/TENANT-ID/v2.0``), and the ID token's ``iss`` must equal it.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.concurrency import run_in_threadpool

from retentiond.web import auth
from retentiond.web.auth import web_state
from retentiond.web.pages.common import redirect
from retentiond.web.pages.signin import safe_next
from retentiond.web.settings import OidcSettings

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "retentiond_oidc"
_metadata: dict[str, tuple[float, dict[str, Any]]] = {}


def provider_metadata(oidc: OidcSettings) -> dict[str, Any]:
    """The provider's discovery document, cached for an hour."""
    cached = _metadata.get(oidc.issuer)
    if cached and time.monotonic() - cached[0] < 3600:
        return cached[1]
    doc = httpx.get(f"{oidc.issuer}/.well-known/openid-configuration", timeout=10).raise_for_status().json()
    if doc.get("issuer", "").rstrip("/") != oidc.issuer:
        raise ValueError(f"the provider says its issuer is {doc.get('issuer')!r}, not {oidc.issuer!r}")
    _metadata[oidc.issuer] = (time.monotonic(), doc)
    return dict(doc)


def _client(request: Request, oidc: OidcSettings) -> OAuth2Client:
    base = web_state(request).settings.public_url
    return OAuth2Client(client_id=oidc.client_id, client_secret=oidc.client_secret,
                        scope=oidc.scopes, redirect_uri=f"{base}/login/oidc/callback",
                        code_challenge_method="S256", timeout=10)


@router.get("/login/oidc", name="oidc_start")
def oidc_start(request: Request, next: str = "/") -> Response:
    state = web_state(request)
    oidc = state.settings.oidc
    assert oidc is not None
    meta = provider_metadata(oidc)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(24)
    with _client(request, oidc) as client:
        url, oauth_state = client.create_authorization_url(
            meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
    response = RedirectResponse(url, status_code=303)
    # SameSite=Lax: the provider's redirect back is a top-level GET, which Lax cookies follow.
    response.set_cookie(STATE_COOKIE, json.dumps({"state": oauth_state, "nonce": nonce,
                                                  "verifier": verifier, "next": safe_next(next)}),
                        httponly=True, secure=state.settings.cookie_secure, samesite="lax",
                        path="/login/oidc", max_age=600)
    return response


def _username_from_callback(request: Request, saved: dict[str, Any]) -> str:
    oidc = web_state(request).settings.oidc
    assert oidc is not None
    meta = provider_metadata(oidc)
    with _client(request, oidc) as client:
        token = client.fetch_token(meta["token_endpoint"], authorization_response=str(request.url),
                                   state=saved["state"], code_verifier=saved["verifier"])
    keys = KeySet.import_key_set(httpx.get(meta["jwks_uri"], timeout=10).raise_for_status().json())
    decoded = jwt.decode(token["id_token"], keys)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": oidc.issuer},
        aud={"essential": True, "value": oidc.client_id},
        nonce={"essential": True, "value": saved["nonce"]},
        exp={"essential": True},
    ).validate(decoded.claims)
    username = decoded.claims.get(oidc.username_claim)
    if not isinstance(username, str) or not username:
        raise ValueError(f"the ID token has no {oidc.username_claim!r} claim")
    return username


@router.get("/login/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    state = web_state(request)
    try:
        saved = json.loads(request.cookies.get(STATE_COOKIE, "") or "{}")
    except json.JSONDecodeError:
        saved = {}
    if not saved or request.query_params.get("state") != saved.get("state"):
        return redirect("/login", flash="The sign-in had expired. Try again.", kind="important")
    if "error" in request.query_params:
        return redirect("/login", flash="The identity provider refused the sign-in.",
                        kind="important")
    try:
        username = await run_in_threadpool(_username_from_callback, request, saved)
    except (httpx.HTTPError, JoseError, ValueError, KeyError) as exc:
        auth.log.warning("oidc_sign_in_failed", error_type=type(exc).__name__)
        return redirect("/login", flash="Sign-in through your organisation failed. Try again, "
                                        "or ask an administrator.", kind="important")
    outcome = await run_in_threadpool(auth.sign_in_user, request, username, "oidc")
    if outcome.token is None:
        return redirect("/login", flash=outcome.error or "Sign-in failed", kind="important")
    response = RedirectResponse(saved.get("next") or "/", status_code=303)
    auth.set_session_cookie(response, state, outcome.token)
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return response
