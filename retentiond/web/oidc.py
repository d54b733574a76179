"""Sign-in through OpenID Connect (Entra ID or any standard provider).

Authorisation-code flow with PKCE (S256), state and nonce, a confidential client
(``client_secret_basic`` or ``client_secret_post``). The provider vouches for who the person
is; what they may do comes from this service's own users table (``retentiond users add NAME
--role ...`` without a password): the claim named by ``[web.oidc] username_claim`` must equal
a user name here.

The ID token is checked as OpenID Connect Core 3.1.3.7 says: signed with an asymmetric
algorithm the provider advertises, by a key from its JWKS (fetched again when a token names a
``kid`` not seen before: key rotation); ``iss`` exactly the discovery document's issuer, which
must be the configured one; ``aud`` this client (and ``azp`` when there are several
audiences); ``exp``, ``iat``, ``nbf`` within two minutes of clock skew; the ``nonce`` this
browser was given. With a tenant (Entra ID's ``tid``, from a ``.../TENANT-GUID/v2.0`` issuer or
``tenant_id``) the token must be that tenant's. The user-name claim is read from the ID token;
only a provider that leaves it out (many put profile claims in userinfo alone) is asked its
userinfo endpoint, whose ``sub`` must match. Every refusal is an audit event.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

import httpx
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
#: Signature algorithms accepted for ID tokens: asymmetric only (never "none", never HS256,
#: whose key would be the client secret).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512")
#: Allowed difference between the provider's clock and ours, in seconds.
CLOCK_SKEW = 120
#: How long the discovery document and the JWKS are kept (a key the provider has withdrawn
#: stops being accepted within this time).
METADATA_TTL = 3600
TIMEOUT = 10

_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, tuple[float, KeySet]] = {}


class SignInRefused(Exception):
    """Why a sign-in was refused, fit for the audit trail (no personal data)."""


def _discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"


def provider_metadata(oidc: OidcSettings) -> dict[str, Any]:
    """The provider's discovery document, checked and cached for an hour."""
    cached = _metadata.get(oidc.issuer)
    if cached and time.monotonic() - cached[0] < METADATA_TTL:
        return cached[1]
    url = _discovery_url(oidc.issuer)
    doc = httpx.get(url, timeout=TIMEOUT).raise_for_status().json()
    if not isinstance(doc, dict):
        raise SignInRefused(f"{url} is not a discovery document")
    said = doc.get("issuer")
    # One trailing slash either way is the same issuer (configurations are written both
    # ways); the ID token's iss must then equal what the provider says, exactly.
    if not isinstance(said, str) or said.rstrip("/") != oidc.issuer.rstrip("/"):
        raise SignInRefused(f"the provider at {url} says its issuer is {said!r}, "
                            f"not {oidc.issuer!r}")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise SignInRefused(f"the discovery document at {url} has no {key}")
    _metadata[oidc.issuer] = (time.monotonic(), doc)
    return doc


def signing_key(meta: dict[str, Any], header: dict[str, Any]) -> Any:
    """The provider's key that signed a token with this header, fetching the JWKS again once
    when the ``kid`` is not in the cached set (the provider has rotated its keys). The token
    comes from the token endpoint, never from the browser, so a made-up ``kid`` cannot make
    anyone else's request fetch the JWKS."""
    uri = meta["jwks_uri"]
    kid = header.get("kid")
    for attempt in (0, 1):
        cached = _jwks.get(uri)
        if cached is None or attempt == 1 or time.monotonic() - cached[0] > METADATA_TTL:
            body = httpx.get(uri, timeout=TIMEOUT).raise_for_status().json()
            cached = (time.monotonic(), KeySet.import_key_set(body))
            _jwks[uri] = cached
        assert cached is not None
        kty = "EC" if str(header.get("alg", "")).startswith("ES") else "RSA"
        keys = [k for k in cached[1].keys if k.get("use") in (None, "sig")
                and k.key_type == kty and (kid is None or k.kid == kid)]
        if kid is None and len(keys) > 1:
            raise SignInRefused("the ID token names no key (kid) and the provider has several")
        if keys:
            return keys[0]
    raise SignInRefused(f"no key {kid!r} in the provider's JWKS")


def _accepted_algorithms(meta: dict[str, Any]) -> list[str]:
    advertised = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    return [a for a in advertised if a in SIGNING_ALGORITHMS]


def check_id_token(oidc: OidcSettings, meta: dict[str, Any], id_token: str, nonce: str,
                   *, now: float | None = None) -> dict[str, Any]:
    """The ID token's claims, once its signature, issuer, audience, times, nonce and tenant
    are right; otherwise SignInRefused saying which check failed."""
    try:
        header_b64 = id_token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(header_b64 + "=" * (-len(header_b64) % 4)))
    except (ValueError, IndexError) as exc:
        raise SignInRefused("the ID token is not a signed JWT") from exc
    if not isinstance(header, dict):
        raise SignInRefused("the ID token is not a signed JWT")
    alg = header.get("alg")
    accepted = _accepted_algorithms(meta)
    if alg not in accepted:
        raise SignInRefused(f"ID token algorithm {alg!r} is not accepted (accepted: "
                            f"{', '.join(accepted) or 'none the provider advertises'})")
    key = signing_key(meta, header)
    try:
        decoded = jwt.decode(id_token, key, algorithms=[alg])
    except JoseError as exc:
        raise SignInRefused(f"the ID token's signature does not verify ({exc.error})") from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()), leeway=CLOCK_SKEW,
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": oidc.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        claim = getattr(exc, "claim", "") or str(exc)
        raise SignInRefused(f"the ID token's {claim} is not right ({exc.error})") from exc
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != oidc.client_id:
        raise SignInRefused("the ID token has several audiences and azp is not this client")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            claims["nonce"].encode(), nonce.encode()):
        raise SignInRefused("the ID token's nonce is not the one this browser was given")
    if oidc.tenant_id is not None and str(claims.get("tid", "")).lower() != oidc.tenant_id:
        raise SignInRefused("the ID token is from another tenant (tid)")
    return dict(claims)


def _client_auth(oidc: OidcSettings, meta: dict[str, Any]) -> str:
    if oidc.token_endpoint_auth_method:
        return oidc.token_endpoint_auth_method
    supported = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in supported and "client_secret_post" in supported:
        return "client_secret_post"
    return "client_secret_basic"


def redeem_code(oidc: OidcSettings, meta: dict[str, Any], *, code: str, verifier: str,
                redirect_uri: str) -> dict[str, Any]:
    """Exchange the authorisation code (with the PKCE verifier) at the token endpoint."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    headers = {"Accept": "application/json"}
    if _client_auth(oidc, meta) == "client_secret_post":
        form |= {"client_id": oidc.client_id, "client_secret": oidc.client_secret}
    else:
        # RFC 6749 2.3.1: each part form-urlencoded before base64 (a secret with + or %
        # otherwise reaches the provider as something else).
        pair = f"{quote(oidc.client_id, safe='')}:{quote(oidc.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    response = httpx.post(meta["token_endpoint"], data=form, headers=headers, timeout=TIMEOUT)
    if response.status_code != 200:
        try:
            error = str(response.json().get("error", ""))[:64]
        except ValueError:
            error = ""
        raise SignInRefused(f"the token endpoint refused the code (HTTP {response.status_code}"
                            f"{', ' + error if error else ''})")
    token = response.json()
    if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
        raise SignInRefused("the token endpoint returned no ID token")
    return token


def username_from(oidc: OidcSettings, meta: dict[str, Any], claims: dict[str, Any],
                  access_token: str | None) -> str:
    """The user-name claim: from the ID token, or else from userinfo (same ``sub``)."""
    value = claims.get(oidc.username_claim)
    if value is None and access_token and isinstance(meta.get("userinfo_endpoint"), str):
        info = httpx.get(meta["userinfo_endpoint"], timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {access_token}",
                                  "Accept": "application/json"}).raise_for_status().json()
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise SignInRefused("userinfo is about someone else (sub differs from the ID token)")
        value = info.get(oidc.username_claim)
    if not isinstance(value, str) or not value:
        raise SignInRefused(f"neither the ID token nor userinfo has a {oidc.username_claim!r} claim")
    return value


def _redirect_uri(request: Request) -> str:
    return f"{web_state(request).settings.public_url}/login/oidc/callback"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _refuse(request: Request, why: str, flash: str) -> Response:
    auth.log.warning("oidc_sign_in_refused", why=why)  # names the check, never the person
    auth.sign_in_refused(request, method="oidc", why=why)
    response = redirect("/login", flash=flash, kind="important")
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")  # one attempt per state
    return response


@router.get("/login/oidc", name="oidc_start")
async def oidc_start(request: Request, next: str = "/") -> Response:
    state = web_state(request)
    oidc = state.settings.oidc
    assert oidc is not None
    try:
        meta = await run_in_threadpool(provider_metadata, oidc)
    except (httpx.HTTPError, ValueError, SignInRefused) as exc:
        why = str(exc) if isinstance(exc, SignInRefused) else f"discovery failed ({type(exc).__name__})"
        return await run_in_threadpool(
            _refuse, request, why, "Sign-in through your organisation is not available just "
                                   "now. Try again, or ask an administrator.")
    verifier, nonce, oauth_state = (secrets.token_urlsafe(48), secrets.token_urlsafe(24),
                                    secrets.token_urlsafe(24))
    query = urlencode({"response_type": "code", "client_id": oidc.client_id,
                       "redirect_uri": _redirect_uri(request), "scope": oidc.scopes,
                       "state": oauth_state, "nonce": nonce,
                       "code_challenge": _s256(verifier), "code_challenge_method": "S256"})
    endpoint = meta["authorization_endpoint"]
    response = RedirectResponse(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}",
                                status_code=303)
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
    # RFC 9207: a provider that names itself in the response must name the right one (a
    # defence against mix-up between providers). Entra ID does not send it.
    if request.query_params.get("iss") not in (None, meta["issuer"]):
        raise SignInRefused("the authorisation response came from another issuer (iss)")
    code = request.query_params.get("code")
    if not code:
        raise SignInRefused("the authorisation response has no code")
    token = redeem_code(oidc, meta, code=code, verifier=saved["verifier"],
                        redirect_uri=_redirect_uri(request))
    claims = check_id_token(oidc, meta, token["id_token"], saved["nonce"])
    access = token.get("access_token")
    return username_from(oidc, meta, claims, access if isinstance(access, str) else None)


@router.get("/login/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    state = web_state(request)
    try:
        saved = json.loads(request.cookies.get(STATE_COOKIE, "") or "{}")
    except json.JSONDecodeError:
        saved = {}
    sent_state = request.query_params.get("state") or ""
    if (not isinstance(saved, dict) or not isinstance(saved.get("state"), str)
            or not secrets.compare_digest(sent_state.encode(), saved["state"].encode())):
        return await run_in_threadpool(
            _refuse, request, "state missing or not the one this browser was given",
            "The sign-in had expired or did not start here. Try again.")
    if "error" in request.query_params:
        error = re.sub(r"[^a-z_]", "", request.query_params["error"].lower())[:64]
        return await run_in_threadpool(_refuse, request, f"the provider refused ({error})",
                                       "The identity provider refused the sign-in.")
    try:
        username = await run_in_threadpool(_username_from_callback, request, saved)
    except (httpx.HTTPError, JoseError, ValueError, KeyError, TypeError, SignInRefused) as exc:
        why = str(exc) if isinstance(exc, SignInRefused) else f"{type(exc).__name__} talking to the provider"
        return await run_in_threadpool(
            _refuse, request, why, "Sign-in through your organisation failed. Try again, "
                                   "or ask an administrator.")
    outcome = await run_in_threadpool(auth.sign_in_user, request, username, "oidc")
    if outcome.token is None:
        refused = redirect("/login", flash=outcome.error or "Sign-in failed", kind="important")
        refused.delete_cookie(STATE_COOKIE, path="/login/oidc")
        return refused
    response = RedirectResponse(saved.get("next") or "/", status_code=303)
    auth.set_session_cookie(response, state, outcome.token)
    response.delete_cookie(STATE_COOKIE, path="/login/oidc")
    return response
