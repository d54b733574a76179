"""OpenID Connect sign-in against a small fake provider on loopback: discovery, the
authorisation-code flow with PKCE, an RS256 ID token checked for issuer, audience, nonce and
signature; unknown users and forged tokens are refused."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
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
from joserfc.jwk import KeySet, RSAKey
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


class FakeProvider:
    """Just enough of an OpenID provider: discovery, authorize (auto-consent), token, JWKS."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://127.0.0.1:{port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.codes: dict[str, dict[str, str]] = {}
        self.user = "officer.oidc"
        self.audience = CLIENT_ID
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
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "expires_in": 300,
                                 "id_token": id_token})

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return KeySet([self.key]).as_dict(private=False)

        self.app = app


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
    (tmp_path / "secret").write_text("s3cret\n")
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


def test_oidc_sign_in_opens_a_session(client: tuple[TestClient, Context]) -> None:
    """A user the provider vouches for, who exists here, is signed in and sent on; audited."""
    c, ctx = client
    done = _round_trip(c)
    assert done.status_code == 303 and done.headers["location"] == "/holds"
    assert c.get("/api/v1/me").json()["username"] == "officer.oidc"
    with ctx.sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.kind == "UserSignedIn"))
    assert event is not None and event.data == {"method": "oidc"}


def test_unknown_user_is_refused(client: tuple[TestClient, Context], provider: FakeProvider) -> None:
    """A person the provider knows but this service does not gets no session."""
    c, _ = client
    provider.user = "stranger"
    done = _round_trip(c)
    assert done.headers["location"] == "/login"
    assert c.get("/api/v1/me").status_code == 401


def test_token_for_another_client_is_refused(client: tuple[TestClient, Context],
                                             provider: FakeProvider) -> None:
    """An ID token whose audience is another application is not accepted."""
    c, _ = client
    provider.audience = "some-other-app"
    done = _round_trip(c)
    assert done.headers["location"] == "/login"
    assert c.get("/api/v1/me").status_code == 401


def test_state_mismatch_is_refused(client: tuple[TestClient, Context]) -> None:
    """A callback whose state does not match the one this browser started with is refused."""
    c, _ = client
    c.get("/login/oidc", follow_redirects=False)
    r = c.get("/login/oidc/callback?code=x&state=forged", follow_redirects=False)
    assert r.headers["location"] == "/login"
