"""OpenID Connect sign-in against a hand-written fake provider on loopback, for what a real
provider never does: ID tokens that are forged (signed by a key not in the JWKS, with "none"
or with HS256 and the client secret), for another audience, from another issuer, or
expired. The real flow is tested against a certified provider in
test_int_web_oidc_provider.py (and in the browser, test_e2e_web_oidc_browser.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import select
from web_support import web_config

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context
from retentiond.policy import PolicySet
from retentiond.registry.db import make_engine, session_factory
from retentiond.registry.models import AuditEvent
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app

CLIENT_ID = "retentiond-test"
FAKE_SECRET = "fake-provider-client-secret"


class FakeProvider:
    """Just enough of an OpenID provider: discovery, authorize (auto-consent), token, JWKS."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        # A kid of its own: retentiond caches JWKS by address, and a port can come round again.
        self.kid = f"k-{secrets.token_hex(4)}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": self.kid})
        self.codes: dict[str, dict[str, str]] = {}
        self.user = "officer.oidc"
        self.audience = CLIENT_ID
        self.claims: dict[str, Any] = {}      # override claims of the ID token
        self.forge: str | None = None          # "other-key", "none", "hs256"
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"]}

        @app.get("/authorize")
        def authorize(request: Request) -> RedirectResponse:
            q = request.query_params
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"],
                                "redirect_uri": q["redirect_uri"]}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

        @app.post("/token")
        def token(code: str = Form(), code_verifier: str = Form(),
                  redirect_uri: str = Form()) -> JSONResponse:
            saved = self.codes.pop(code, None)
            digest = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=")
            if (saved is None or digest.decode() != saved["challenge"]
                    or redirect_uri != saved["redirect_uri"]):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": self.audience, "sub": "abc", "iat": now,
                      "exp": now + 300, "nonce": saved["nonce"], "preferred_username": self.user}
            claims |= self.claims
            id_token = self._sign(claims)
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                                 "id_token": id_token})

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return KeySet([self.key]).as_dict(private=False)

        self.app = app

    def _sign(self, claims: dict[str, Any]) -> str:
        if self.forge == "other-key":
            return jwt.encode({"alg": "RS256", "kid": self.kid}, claims,
                              RSAKey.generate_key(2048, parameters={"kid": self.kid}))
        if self.forge == "hs256":   # the client secret as an HMAC key: anyone holding it
            return jwt.encode({"alg": "HS256", "kid": self.kid}, claims,
                              OctKey.import_key(FAKE_SECRET.encode()))
        if self.forge == "none":
            def part(d: dict[str, Any]) -> str:
                return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
            return f"{part({'alg': 'none'})}.{part(claims)}."
        return jwt.encode({"alg": "RS256", "kid": self.kid}, claims, self.key)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = FakeProvider(port)
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield fake
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def client(sqlite_template: Path, tmp_path: Path, policy: PolicySet, clock: FixedClock,
           provider: FakeProvider) -> Iterator[tuple[TestClient, Context]]:
    shutil.copy(sqlite_template, tmp_path / "r.db")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ctx = Context(sessions=session_factory(make_engine(url)), policy=policy, clock=clock,
                  actor="test.setup")
    add_user(ctx, username="officer.oidc", roles="ig_officer", password=None)
    (tmp_path / "secret").write_text(FAKE_SECRET + "\n")
    cfg = web_config(url, tmp_path, public_url="https://testserver",
                     oidc={"issuer": provider.issuer, "client_id": CLIENT_ID,
                           "client_secret_file": "secret"})
    # The ID token's exp is checked against the real clock; sessions use the test clock.
    clock.instant = dt.datetime.now(dt.UTC)
    app = create_app(cfg, policy=policy, clock=clock, sessions=ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c, ctx


def _round_trip(c: TestClient) -> httpx.Response:
    start = c.get("/login/oidc?next=/holds", follow_redirects=False)
    assert start.status_code == 303
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlparse(at_provider.headers["location"])
    assert back.path == "/login/oidc/callback" and "code" in parse_qs(back.query)
    return c.get(f"{back.path}?{back.query}", follow_redirects=False)  # type: ignore[return-value]


def test_genuine_token_is_accepted(client: tuple[TestClient, Context]) -> None:
    """The control for the forgeries below: the fake's own token signs in (and is audited)."""
    c, ctx = client
    done = _round_trip(c)
    assert done.status_code == 303 and done.headers["location"] == "/holds"
    assert c.get("/api/v1/me").json()["username"] == "officer.oidc"
    with ctx.sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.kind == "UserSignedIn"))
    assert event is not None and event.data == {"method": "oidc"}


@pytest.mark.parametrize(("forge", "claims", "why"), [
    ("other-key", {}, "signature does not verify"),
    ("hs256", {}, "algorithm 'HS256' is not accepted"),
    ("none", {}, "algorithm 'none' is not accepted"),
    (None, {"iss": "http://127.0.0.1:1/another-tenant/v2.0"}, "iss is not right"),
    (None, {"exp": 1_000_000_000, "iat": 999_999_000}, "exp is not right"),
    (None, {"nonce": "replayed"}, "nonce is not the one"),
    (None, {"aud": [CLIENT_ID, "other-app"]}, "azp is not this client"),
])
def test_forged_tokens_are_refused(client: tuple[TestClient, Context], provider: FakeProvider,
                                   forge: str | None, claims: dict[str, Any], why: str) -> None:
    """Forged, misdirected, stale or replayed ID tokens open no session; each is audited
    with the check that failed."""
    c, ctx = client
    provider.forge, provider.claims = forge, claims
    done = _round_trip(c)
    assert done.headers["location"] == "/login"
    assert c.get("/api/v1/me").status_code == 401
    with ctx.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.kind == "SignInFailed")).one()
    assert event.data is not None and why in event.data["why"]


def test_token_for_another_client_is_refused(client: tuple[TestClient, Context],
                                             provider: FakeProvider) -> None:
    """An ID token whose audience is another application is not accepted."""
    c, _ = client
    provider.audience = "some-other-app"
    done = _round_trip(c)
    assert done.headers["location"] == "/login"
    assert c.get("/api/v1/me").status_code == 401
