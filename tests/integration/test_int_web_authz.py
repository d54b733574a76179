"""Every route of the web app against every role, generated from the app's own routes.

A route without an entry in ``retentiond.web.roles.ROUTE_RULES`` fails
``test_every_route_has_a_rule``, and is refused to everyone by the app itself.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker
from web_support import ROLE_USER, Estate, seed, web_config

from retentiond.clock import FixedClock
from retentiond.policy import load_policy_set
from retentiond.web.app import create_app, iter_routes
from retentiond.web.roles import (
    PUBLIC,
    ROLE_PERMISSIONS,
    ROLES,
    ROUTE_RULES,
    SIGNED_IN,
    SIGNED_IN_SESSION,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy_set([ROOT / "policies" / "isa-default.toml"])
CLOCK = FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
#: Values for path parameters: things that do not exist, so no request changes anything real.
PARAMS = {"record_key": "NO-SUCH-RECORD", "record_id": "NO-SUCH-RECORD", "hold_id": "999999",
          "username": "nobody", "serial": "NO-SUCH-CERT", "kind": "pdf", "notification_id": "999999",
          "filter_id": "999999", "token_id": "999999", "disposal_id": "999999",
          "name": "nosuchgroup"}


def _routes() -> list[tuple[str, str, str]]:
    app = create_app(web_config("sqlite://", ROOT), policy=POLICY, clock=CLOCK,
                     sessions=sessionmaker())
    out = []
    for route in iter_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            out.append((route.name, method, route.path))
    assert len(out) > 40, "the app's routes were not found"
    return out


ROUTES = _routes()


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS[m.group(1)], path)


@pytest.fixture(scope="module")
def estate(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Estate:
    path = tmp_path_factory.mktemp("authz") / "registry.db"
    shutil.copy(sqlite_template, path)
    return seed(f"sqlite:///{path}", POLICY, CLOCK, records=150)


@pytest.fixture(scope="module")
def client(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path_factory.mktemp("cfg")), policy=POLICY,
                     clock=CLOCK, sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def test_every_route_has_a_rule() -> None:
    """Each route the app serves is named in ROUTE_RULES (a new route must be decided)."""
    missing = sorted({name for name, _, _ in ROUTES if name not in ROUTE_RULES})
    assert not missing, f"routes without an authorisation rule: {missing}"
    stale = sorted(set(ROUTE_RULES) - {name for name, _, _ in ROUTES} - {"oidc_start", "oidc_callback"})
    assert not stale, f"rules for routes that no longer exist: {stale}"


def test_a_route_without_a_rule_is_refused(client: TestClient, estate: Estate) -> None:
    """The app fails closed: a route missing from the table is refused, even to an admin."""
    app = client.app
    app.router.add_api_route("/unruled", lambda: {"ok": True}, name="unruled")  # type: ignore[attr-defined]
    try:
        r = client.get("/unruled", headers={"Authorization": f"Bearer {estate.tokens['admin']}"})
        assert r.status_code == 403
    finally:
        app.router.routes.pop()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "method", "path"), ROUTES, ids=[f"{m} {p}" for _, m, p in ROUTES])
def test_anonymous_is_sent_to_sign_in(client: TestClient, name: str, method: str, path: str) -> None:
    """Without a session or token, only public routes answer; pages redirect, the API says 401."""
    r = client.request(method, _url(path), follow_redirects=False)
    if ROUTE_RULES[name] == PUBLIC:
        assert r.status_code not in (401, 403)
    elif path.startswith("/api/"):
        assert r.status_code == 401
    else:
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


CASES = [(role, *route) for route in ROUTES for role in ROLES]


@pytest.mark.parametrize(("role", "name", "method", "path"), CASES,
                         ids=[f"{r}-{m} {p}" for r, _, m, p in CASES])
def test_role_against_route(client: TestClient, estate: Estate, role: str, name: str, method: str,
                            path: str) -> None:
    """A role is refused (403) exactly the routes whose permission it lacks."""
    rule = ROUTE_RULES[name]
    allowed = rule in (PUBLIC, SIGNED_IN) or rule in ROLE_PERMISSIONS[role]
    token = estate.tokens[ROLE_USER[role]]
    r = client.request(method, _url(path), headers={"Authorization": f"Bearer {token}"},
                       follow_redirects=False)
    if allowed:
        assert r.status_code not in (401, 403), r.text[:300]
    else:
        assert r.status_code == 403, r.text[:300]


@pytest.mark.parametrize(("role", "permission", "expected"), [
    ("ig_officer", "approve", False), ("ig_officer", "review", True), ("ig_officer", "hold", True),
    ("approver", "approve", True), ("approver", "review", False), ("approver", "hold", False),
    ("auditor", "view_audit", True), ("auditor", "approve", False), ("auditor", "review", False),
    ("auditor", "hold", False), ("auditor", "manage_users", False),
    ("controller", "view_holds", False), ("controller", "view_audit", False),
    ("controller", "approve", False), ("controller", "hold", False),
    ("admin", "manage_users", True), ("admin", "approve", False),
    ("controller", "acknowledge", True), ("ig_officer", "acknowledge", False),
    ("auditor", "resend", False), ("ig_officer", "resend", True),
    ("controller", "view_hold_details", False), ("approver", "view_hold_details", True),
    ("auditor", "view_hold_details", True), ("ig_officer", "view_hold_details", True),
])
def test_the_table_says_what_the_design_says(role: str, permission: str, expected: bool) -> None:
    """The key lines of the role table, written out so a careless edit of it is caught."""
    assert (permission in ROLE_PERMISSIONS[role]) is expected


def test_auditor_changes_nothing() -> None:
    """Every POST an auditor may make is a read (a policy preview, a password-protected
    export); every other is closed to them."""
    for name, method, _ in ROUTES:
        rule = ROUTE_RULES[name]
        if method == "POST" and rule in ROLE_PERMISSIONS["auditor"]:
            assert rule in ("preview_policy", "export"), name


def test_a_token_is_made_by_its_own_user_in_a_session() -> None:
    """The routes that make API tokens need a browser session and no role: they make one for
    the signed-in user only (an administrator lists and revokes tokens, never makes one for
    someone else), and an API token is refused them (403 in the role-by-route table above)."""
    makers = {name for name in ROUTE_RULES if "token" in name and "create" in name}
    assert makers == {"account_tokens_create", "api_tokens_create"}
    assert {ROUTE_RULES[name] for name in makers} == {SIGNED_IN_SESSION}
    assert ROUTE_RULES["users_revoke_token"] == "manage_users"
    assert not any(SIGNED_IN_SESSION in perms for perms in ROLE_PERMISSIONS.values())
