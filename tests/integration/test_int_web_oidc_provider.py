"""OpenID Connect sign-in against a real, certified OpenID Provider (panva's oidc-provider on
loopback, tests/oidc_provider), set up as Entra ID tenants look from outside: issuers
``http://127.0.0.1:PORT/TENANT-GUID/v2.0``, a ``tid`` claim, signing keys shared by every
tenant, PKCE required. The sign-in goes through the provider's own login and consent pages;
retentiond talks to the provider's discovery, token and JWKS endpoints for real."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import httpx
import pytest
from faker import Faker
from fastapi.testclient import TestClient
from oidc_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    Account,
    RunningProvider,
    Tenant,
    account,
    client,
    log_in_at_provider,
    openid_provider,
    require_provider,
    signing_keys,
)
from sqlalchemy import select
from web_support import web_config

from retentiond.clock import FixedClock
from retentiond.config import ConfigError
from retentiond.lifecycle.context import Context
from retentiond.policy import PolicySet
from retentiond.registry.db import make_engine, session_factory
from retentiond.registry.models import AuditEvent
from retentiond.web import oidc
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app
from retentiond.web.settings import load_web_settings

BASE = "https://testserver"
CALLBACK = f"{BASE}/login/oidc/callback"
POST_CLIENT = "8c1d5e2a-4b3f-4a7e-b9d0-1e2f3a4b5c6d"
ES256_CLIENT = "d7e6f5a4-b3c2-4d1e-8f9a-0b1c2d3e4f5a"

fake = Faker("en_GB")
fake.seed_instance(5)
HOME = Tenant()
OTHER = Tenant()                                   # another organisation, same keys
STANDARD = Tenant(path="/standard", entra_like=False, trailing_slash=True)
OFFICER = account(fake, HOME.tenant_id)
STRANGER = account(fake, HOME.tenant_id)           # known to the provider, not to retentiond
GUEST = account(fake, OTHER.tenant_id)             # in HOME's directory, but its tid says OTHER
GUEST.login = "guest." + GUEST.login
# Someone in another organisation whose user name is the same as the officer's here.
IMPOSTOR = Account(login=OFFICER.login, claims=OFFICER.claims | {
    "tid": OTHER.tenant_id, "oid": "00000000-0000-4000-8000-000000000000"})
HOME.accounts += [OFFICER, STRANGER, GUEST]
OTHER.accounts += [IMPOSTOR]
STANDARD.accounts += [Account(login=OFFICER.login,
                              claims={k: v for k, v in OFFICER.claims.items() if k != "tid"})]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    require_provider()
    with openid_provider(tmp_path_factory.mktemp("op"), tenants=[HOME, OTHER, STANDARD],
                         clients=[client([CALLBACK]),
                                  client([CALLBACK], client_id=POST_CLIENT,
                                         auth_method="client_secret_post"),
                                  client([CALLBACK], client_id=ES256_CLIENT, alg="ES256")]) as op:
        yield op


Site = Callable[..., tuple[TestClient, Context]]


@pytest.fixture
def site(sqlite_template: Path, tmp_path: Path, policy: PolicySet, clock: FixedClock,
         provider: RunningProvider) -> Iterator[Site]:
    """Make retentiond with a [web.oidc] section (the home tenant unless told otherwise);
    officer.* exists here as an IG officer, the stranger does not."""
    shutil.copy(sqlite_template, tmp_path / "r.db")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ctx = Context(sessions=session_factory(make_engine(url)), policy=policy, clock=clock,
                  actor="test.setup")
    add_user(ctx, username=OFFICER.login, roles="ig_officer", password=None)
    (tmp_path / "secret").write_text(provider.config["clients"][0]["client_secret"] + "\n")
    # ID token times are checked against the real clock; sessions use the test clock.
    clock.instant = dt.datetime.now(dt.UTC)
    opened: list[TestClient] = []

    def make(**settings: Any) -> tuple[TestClient, Context]:
        cfg = web_config(url, tmp_path, public_url=BASE,
                         oidc={"issuer": provider.issuers[0], "client_id": CLIENT_ID,
                               "client_secret_file": "secret"} | settings)
        app = create_app(cfg, policy=policy, clock=clock, sessions=ctx.sessions)
        c = TestClient(app, base_url=BASE)
        c.__enter__()
        opened.append(c)
        return c, ctx

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def start(c: TestClient, next_url: str = "/queue") -> str:
    """Press 'sign in with your organisation': the provider's authorisation address."""
    r = c.get(f"/login/oidc?next={quote(next_url)}", follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return str(r.headers["location"])


def back_from_provider(c: TestClient, who: Account, authorize: str | None = None) -> str:
    """Sign in at the provider; the callback address it sends the browser to."""
    return log_in_at_provider(authorize or start(c), who.login, returns_to=CALLBACK)


def finish(c: TestClient, callback: str) -> httpx.Response:
    parts = urlsplit(callback)
    return c.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def flash(r: httpx.Response) -> str:
    found = re.search(r'retentiond_flash="?[a-z]+:([^";]+)', r.headers.get("set-cookie", ""))
    return unquote(found.group(1)) if found else ""


def refusals(ctx: Context) -> list[dict[str, Any]]:
    with ctx.sessions() as s:
        return [e.data for e in s.scalars(select(AuditEvent).where(
            AuditEvent.kind == "SignInFailed").order_by(AuditEvent.id))]


def test_known_user_signs_in_with_their_role(site: Site) -> None:
    """The officer signs in at the provider (login and consent pages), comes back with a
    session and their role here, and lands where they were going; the sign-in is audited."""
    c, ctx = site()
    done = finish(c, back_from_provider(c, OFFICER))
    assert done.status_code == 303 and done.headers["location"] == "/queue"
    me = c.get("/api/v1/me").json()
    assert me["username"] == OFFICER.login and me["roles"] == ["ig_officer"]
    assert c.get("/queue").status_code == 200
    with ctx.sessions() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.kind == "UserSignedIn"))
    assert event is not None and event.actor == OFFICER.login and event.data == {"method": "oidc"}


def test_unknown_user_is_refused_with_a_clear_message(site: Site) -> None:
    """Someone the provider vouches for but who has no account here gets no session, a
    sign-in page that says why, and an audit event."""
    c, ctx = site()
    done = finish(c, back_from_provider(c, STRANGER))
    assert done.headers["location"] == "/login"
    page = c.get("/login")
    assert f"{STRANGER.login} has no account in this service" in page.text
    assert "Ask an administrator to add you" in page.text
    assert c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1] == {"method": "oidc", "why": "no such user here, or disabled"}


def test_sign_out_ends_the_session_on_the_server(site: Site) -> None:
    """After signing out, the old session cookie opens nothing, even if it is replayed."""
    c, ctx = site()
    finish(c, back_from_provider(c, OFFICER))
    cookie = next(k for k in c.cookies.jar if k.name == "__Host-retentiond")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/account").text)
    assert csrf is not None
    out = c.post("/logout", data={"csrf_token": csrf.group(1)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    c.cookies.jar.set_cookie(cookie)
    assert c.get("/api/v1/me").status_code == 401
    with ctx.sessions() as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(AuditEvent.actor == OFFICER.login)))
    assert kinds[-2:] == ["UserSignedIn", "UserSignedOut"]


def test_same_user_name_in_another_tenant_is_refused(site: Site, provider: RunningProvider) -> None:
    """A person in another organisation with the officer's user name signs in at their own
    tenant (same signing keys, as in Entra ID) and is sent back here: refused. With the
    provider's iss response parameter (RFC 9207) it is caught at once; without it (Entra ID
    sends none), the other tenant's code is refused by the home tenant's token endpoint."""
    c, ctx = site()
    home_auth = start(c)
    other_auth = home_auth.replace(HOME.tenant_id, OTHER.tenant_id)
    callback = back_from_provider(c, IMPOSTOR, other_auth)
    done = finish(c, callback)
    assert done.headers["location"] == "/login" and c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1]["why"] == "the authorisation response came from another issuer (iss)"

    other_auth = start(c).replace(HOME.tenant_id, OTHER.tenant_id)
    parts = urlsplit(back_from_provider(c, IMPOSTOR, other_auth))
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != "iss"}
    done = c.get(f"{parts.path}?{urlencode(query)}", follow_redirects=False)
    assert done.headers["location"] == "/login" and c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1]["why"] == "the token endpoint refused the code (HTTP 400, invalid_grant)"


def test_other_tenants_id_token_is_refused(site: Site, provider: RunningProvider,
                                          tmp_path: Path) -> None:
    """A real ID token from the other tenant, signed with the keys every tenant shares,
    fails the issuer check; one from the home tenant passes."""
    settings = load_web_settings(web_config("sqlite://", tmp_path, public_url=BASE, oidc={
        "issuer": provider.issuers[0], "client_id": CLIENT_ID, "client_secret_file": "secret"}))
    assert settings.oidc is not None and settings.oidc.tenant_id == HOME.tenant_id
    home = oidc.provider_metadata(settings.oidc)
    other_token = _id_token(provider.issuers[1], IMPOSTOR, nonce="n-1")
    with pytest.raises(oidc.SignInRefused, match="iss"):
        oidc.check_id_token(settings.oidc, home, other_token, "n-1")
    claims = oidc.check_id_token(settings.oidc, home, _id_token(provider.issuers[0], OFFICER,
                                                                nonce="n-2"), "n-2")
    assert claims["tid"] == HOME.tenant_id and claims["preferred_username"] == OFFICER.login


def test_provider_naming_another_issuer_or_down_is_refused(site: Site,
                                                           provider: RunningProvider) -> None:
    """Configured by another name for the same provider (localhost for 127.0.0.1), the
    discovery document names a different issuer: no sign-in starts. Nor does one whose
    provider does not answer. Both say so plainly and are audited."""
    c, ctx = site(issuer=provider.issuers[0].replace("127.0.0.1", "localhost"))
    r = c.get("/login/oidc", follow_redirects=False)
    assert r.headers["location"] == "/login" and "not available just now" in flash(r)
    assert "says its issuer is" in refusals(ctx)[-1]["why"]
    c, ctx = site(issuer=f"http://127.0.0.1:1/{HOME.tenant_id}/v2.0")
    r = c.get("/login/oidc", follow_redirects=False)
    assert r.headers["location"] == "/login" and "not available just now" in flash(r)
    assert refusals(ctx)[-1]["why"] == "discovery failed (ConnectError)"


def test_token_with_another_tid_is_refused(site: Site) -> None:
    """A token from the home issuer whose tid names another directory is refused."""
    c, ctx = site()
    add_user(ctx, username=GUEST.claims["preferred_username"], roles="auditor", password=None)
    done = finish(c, back_from_provider(c, GUEST))
    assert done.headers["location"] == "/login" and c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1]["why"] == "the ID token is from another tenant (tid)"


def test_state_mismatch_is_refused_and_audited(site: Site) -> None:
    """A genuine code arriving with a state this browser did not start with is refused."""
    c, ctx = site()
    parts = urlsplit(back_from_provider(c, OFFICER))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"state": "forged"}
    done = c.get(f"{parts.path}?{urlencode(query)}", follow_redirects=False)
    assert done.headers["location"] == "/login"
    assert "did not start here" in flash(done)
    assert c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1] == {"method": "oidc",
                                 "why": "state missing or not the one this browser was given"}


def test_nonce_mismatch_is_refused(site: Site) -> None:
    """A real ID token whose nonce is not the one this browser's attempt was given (a
    replayed token) is refused."""
    c, ctx = site()
    callback = back_from_provider(c, OFFICER)
    jar = next(k for k in c.cookies.jar if k.name == "retentiond_oidc")
    assert jar.value is not None
    saved = json.loads(SimpleCookie(f"x={jar.value}")["x"].value)
    tampered: SimpleCookie = SimpleCookie()
    tampered["x"] = json.dumps(saved | {"nonce": "another-attempt"})
    jar.value = tampered["x"].coded_value
    done = finish(c, callback)
    assert done.headers["location"] == "/login" and c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1]["why"] == "the ID token's nonce is not the one this browser was given"


def test_code_from_another_browser_is_refused_by_pkce(site: Site) -> None:
    """A code obtained in someone else's sign-in, injected into this browser's callback with
    this browser's state, fails at the provider: the PKCE verifier does not match."""
    victim, ctx = site()
    attacker, _ = site()
    victim_state = parse_qs(urlsplit(start(victim)).query)["state"][0]
    stolen = urlsplit(back_from_provider(attacker, OFFICER))
    query = {k: v[0] for k, v in parse_qs(stolen.query).items()} | {"state": victim_state}
    done = victim.get(f"{stolen.path}?{urlencode(query)}", follow_redirects=False)
    assert done.headers["location"] == "/login" and victim.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1]["why"] == "the token endpoint refused the code (HTTP 400, invalid_grant)"


def test_client_secret_post_and_es256(site: Site) -> None:
    """A client registered for client_secret_post signs in when configured so (the other
    tests use client_secret_basic, with a secret holding + and %, which must be
    form-encoded); ES256-signed ID tokens are accepted."""
    c, _ = site(client_id=POST_CLIENT, token_endpoint_auth_method="client_secret_post")
    finish(c, back_from_provider(c, OFFICER))
    assert c.get("/api/v1/me").json()["username"] == OFFICER.login
    c, _ = site(client_id=ES256_CLIENT)
    callback = back_from_provider(c, OFFICER)
    finish(c, callback)
    assert c.get("/api/v1/me").json()["username"] == OFFICER.login


def test_standard_provider_with_userinfo_and_trailing_slash(site: Site,
                                                            provider: RunningProvider) -> None:
    """A provider that is not Entra-like: its issuer ends in '/', it has no tid, and the ID
    token carries only sub (the name comes from userinfo). Configured without the slash."""
    assert provider.issuers[2].endswith("/standard/")
    c, _ = site(issuer=provider.issuers[2].rstrip("/"))
    finish(c, back_from_provider(c, STANDARD.accounts[0]))
    assert c.get("/api/v1/me").json()["username"] == OFFICER.login


def test_oid_as_the_user_name(site: Site) -> None:
    """username_claim = "oid": the immutable object id names the user here."""
    c, ctx = site(username_claim="oid")
    add_user(ctx, username=OFFICER.claims["oid"], roles="auditor", password=None)
    finish(c, back_from_provider(c, OFFICER))
    assert c.get("/api/v1/me").json()["roles"] == ["auditor"]


def test_clock_skew_is_allowed_up_to_two_minutes(site: Site, provider: RunningProvider,
                                                 tmp_path: Path) -> None:
    """A real ID token checked with our clock up to two minutes off either way passes;
    further off it is refused (issued in the future; expired)."""
    settings = load_web_settings(web_config("sqlite://", tmp_path, public_url=BASE, oidc={
        "issuer": provider.issuers[0], "client_id": CLIENT_ID, "client_secret_file": "secret"}))
    assert settings.oidc is not None
    meta = oidc.provider_metadata(settings.oidc)
    token = _id_token(provider.issuers[0], OFFICER, nonce="n")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    for now in (claims["iat"] - 100, claims["exp"] + 100):
        oidc.check_id_token(settings.oidc, meta, token, "n", now=now)
    with pytest.raises(oidc.SignInRefused, match="iat"):
        oidc.check_id_token(settings.oidc, meta, token, "n", now=claims["iat"] - 300)
    with pytest.raises(oidc.SignInRefused, match="exp"):
        oidc.check_id_token(settings.oidc, meta, token, "n", now=claims["exp"] + 300)


def test_key_rotation_fetches_the_jwks_again(sqlite_template: Path, tmp_path: Path,
                                             policy: PolicySet, clock: FixedClock) -> None:
    """The provider restarts with a new signing key first in its JWKS: the next sign-in's
    token names a kid retentiond has not seen, and it fetches the JWKS again."""
    require_provider()
    shutil.copy(sqlite_template, tmp_path / "r.db")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ctx = Context(sessions=session_factory(make_engine(url)), policy=policy, clock=clock,
                  actor="test.setup")
    add_user(ctx, username=OFFICER.login, roles="ig_officer", password=None)
    clock.instant = dt.datetime.now(dt.UTC)
    old, new = signing_keys("RS256"), signing_keys("RS256")
    tenant = Tenant(tenant_id=HOME.tenant_id, accounts=[OFFICER])
    kids = []
    with openid_provider(tmp_path / "op1", tenants=[tenant], clients=[client([CALLBACK])],
                         jwks=old) as op:
        port = op.port
        (tmp_path / "secret").write_text(op.config["clients"][0]["client_secret"])
        cfg = web_config(url, tmp_path, public_url=BASE, oidc={
            "issuer": op.issuer, "client_id": CLIENT_ID, "client_secret_file": "secret"})
        app = create_app(cfg, policy=policy, clock=clock, sessions=ctx.sessions)
        with TestClient(app, base_url=BASE) as c:
            finish(c, back_from_provider(c, OFFICER))
            assert c.get("/api/v1/me").status_code == 200, refusals(ctx)
        kids.append(_cached_kids(op.issuer))
    rotated = {"keys": new["keys"] + old["keys"]}
    with openid_provider(tmp_path / "op2", tenants=[tenant], clients=[client([CALLBACK])],
                         jwks=rotated, port=port) as op:
        with TestClient(app, base_url=BASE) as c:
            finish(c, back_from_provider(c, OFFICER))
            assert c.get("/api/v1/me").json()["username"] == OFFICER.login
        kids.append(_cached_kids(op.issuer))
    assert kids == [[old["keys"][0]["kid"]], [new["keys"][0]["kid"], old["keys"][0]["kid"]]]


@pytest.mark.parametrize(("issuer", "extra", "message"), [
    ("https://login.microsoftonline.com/common/v2.0", {}, "multi-tenant endpoint (common)"),
    ("https://login.microsoftonline.com/organizations/v2.0", {}, "(organizations)"),
    ("http://127.0.0.1:9/Common/v2.0", {}, "multi-tenant endpoint (common)"),
    ("http://login.example.org/tenant/v2.0", {}, "must be an https:// address"),
    ("http://127.0.0.1.example.org/x", {}, "must be an https:// address"),
    ("https://login.microsoftonline.com/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/v2.0",
     {"tenant_id": "11111111-2222-4333-8444-555555555555"}, "is not the tenant in the issuer"),
    ("https://idp.example.org", {"token_endpoint_auth_method": "private_key_jwt"},
     "must be client_secret_basic or client_secret_post"),
    ("https://login.microsoftonline.com/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/v2.0",
     {"username_claim": "email"}, "'email' cannot name users from Entra ID"),
    ("https://idp.example.org", {"scopes": "profile email"}, "must include openid"),
    ("https://login.microsoftonline.com/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", {},
     "an Entra ID issuer is https://login.microsoftonline.com/TENANT-ID/v2.0"),
    ("https://login.microsoftonline.com/council.example/v2.0", {},
     "an Entra ID issuer is https://login.microsoftonline.com/TENANT-ID/v2.0"),
])
def test_configuration_refuses_what_the_docs_say(tmp_path: Path, issuer: str,
                                                 extra: dict[str, str], message: str) -> None:
    """Entra ID's multi-tenant endpoints, plain http off loopback, a tenant_id that
    contradicts the issuer, an unsupported client authentication, the unverified email claim
    as an Entra ID user name, scopes without openid, and an Entra ID issuer that is not a
    tenant's v2.0 endpoint (v1.0, or a domain name for the tenant) are refused at start."""
    (tmp_path / "secret").write_text("s")
    cfg = web_config("sqlite://", tmp_path, public_url=BASE, oidc={
        "issuer": issuer, "client_id": CLIENT_ID, "client_secret_file": "secret"} | extra)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_web_settings(cfg)


def test_tenant_comes_from_the_issuer(tmp_path: Path) -> None:
    """A tenant-specific Entra ID issuer sets the tenant the tokens must carry."""
    (tmp_path / "secret").write_text("s")
    guid = "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0"
    settings = load_web_settings(web_config("sqlite://", tmp_path, public_url=BASE, oidc={
        "issuer": f"https://login.microsoftonline.com/{guid}/v2.0/", "client_id": CLIENT_ID,
        "client_secret_file": "secret"}))
    assert settings.oidc is not None
    assert settings.oidc.tenant_id == guid.lower()
    assert settings.oidc.issuer == f"https://login.microsoftonline.com/{guid}/v2.0"


def _cached_kids(issuer: str) -> list[str]:
    meta = oidc._metadata[issuer][1]
    return [k.kid for k in oidc._jwks[meta["jwks_uri"]][1].keys]


def _id_token(issuer: str, who: Account, *, nonce: str) -> str:
    """A real ID token from the provider for ``who``, by the code flow with PKCE, as any
    client of the provider would get one."""
    import hashlib
    import secrets

    meta = httpx.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration").json()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = urlencode({"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": CALLBACK,
                       "scope": "openid profile email", "state": "s", "nonce": nonce,
                       "code_challenge": challenge.decode(), "code_challenge_method": "S256"})
    back = log_in_at_provider(f"{meta['authorization_endpoint']}?{query}", who.login,
                              returns_to=CALLBACK)
    code = parse_qs(urlsplit(back).query)["code"][0]
    token = httpx.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": verifier}, auth=(quote(CLIENT_ID, safe=""), quote(CLIENT_SECRET, safe="")))
    token.raise_for_status()
    return str(token.json()["id_token"])


def test_a_password_user_cannot_sign_in_through_the_provider(site: Site) -> None:
    """The provider vouches for someone whose name here belongs to a password user: no
    session, a page that says to use the password form, and an audit event."""
    c, ctx = site()
    add_user(ctx, username=STRANGER.login, roles="ig_officer",
             password="a long enough password")
    done = finish(c, back_from_provider(c, STRANGER))
    assert done.headers["location"] == "/login"
    assert "signs in to this service with a password" in c.get("/login").text
    assert c.get("/api/v1/me").status_code == 401
    assert refusals(ctx)[-1] == {"method": "oidc", "why": "the user signs in with a password"}


def test_the_claim_matches_the_user_whatever_its_case(site: Site) -> None:
    """An OpenID Connect user added as ``Officer.X@...`` is the one the provider's lower-case
    claim names (names are one person's up to case and width)."""
    c, ctx = site()
    with ctx.sessions.begin() as session:
        from retentiond.registry.models import WebUser

        session.execute(WebUser.__table__.delete())
    add_user(ctx, username=OFFICER.login.upper(), roles="auditor", password=None)
    done = finish(c, back_from_provider(c, OFFICER))
    assert done.status_code == 303 and done.headers["location"] == "/queue"
    me = c.get("/api/v1/me").json()
    assert me["username"] == OFFICER.login.upper() and me["roles"] == ["auditor"]
