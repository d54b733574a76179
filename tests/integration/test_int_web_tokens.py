"""API tokens are made by their own user only, on real SQLite and PostgreSQL: an
administrator lists and revokes anyone's, never makes one for someone else, so no one can
act as two approvers (DESIGN.md section 6)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from web_support import Estate, app_client, seed, sign_in

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import LifecycleError
from retentiond.policy import PolicySet
from retentiond.registry import models as m
from retentiond.web.sessions import TOKEN_PREFIX, create_token, digest


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=60)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    with app_client(estate, policy, clock, tmp_path) as c:
        yield c


def _tokens(estate: Estate) -> int:
    with estate.ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.ApiToken)) or 0)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_administrator_cannot_make_a_token_for_someone_else(estate: Estate) -> None:
    """Making a token for another user is refused, whoever asks (an administrator included),
    and stores nothing."""
    before = _tokens(estate)
    for maker in ("admin", "approver2", "test.setup"):
        ctx = dataclasses.replace(estate.ctx, actor=maker)
        with pytest.raises(LifecycleError, match="made by its own user only"):
            create_token(ctx, "approver1", name="for approving")
    assert _tokens(estate) == before


def test_no_route_makes_a_token_for_another_user(client: TestClient, estate: Estate) -> None:
    """An administrator signed in finds no route that makes a token for an approver: the old
    users-page form is gone, the API makes one for the caller only and refuses a user name."""
    csrf = sign_in(client, "admin")
    before = _tokens(estate)
    r = client.post("/users/approver1/tokens", data={"name": "x", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code in (404, 405)
    r = client.post("/api/v1/tokens", json={"name": "x", "username": "approver1"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    made = client.post("/api/v1/tokens", json={"name": "admin's own"},
                       headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201 and made.json()["item"]["username"] == "admin"
    assert _tokens(estate) == before + 1
    # The administrator's own token acts as the administrator, who may not approve.
    r = client.post("/api/v1/disposals/approve", json={"ids": [1], "reason": "x"},
                    headers=_bearer(made.json()["token"]))
    assert r.status_code == 403


def test_a_token_cannot_make_another(client: TestClient, estate: Estate) -> None:
    """A request with an API token cannot make a token (a leaked one cannot outlive its
    revocation); a browser session of the same user can."""
    before = _tokens(estate)
    r = client.post("/api/v1/tokens", json={"name": "more"},
                    headers=_bearer(estate.tokens["approver1"]))
    assert r.status_code == 403 and "API token cannot" in r.json()["detail"]
    assert _tokens(estate) == before
    csrf = sign_in(client, "approver1")
    r = client.post("/account/tokens", data={"name": "nightly script", "csrf_token": csrf})
    assert r.status_code == 200 and TOKEN_PREFIX in r.text
    assert _tokens(estate) == before + 1


def test_a_token_made_by_someone_else_authenticates_nobody(client: TestClient,
                                                            estate: Estate) -> None:
    """A token row whose maker is not its user (written in by hand, or left from before the
    rule) is refused as if it did not exist."""
    secret = TOKEN_PREFIX + "made-for-someone-else"
    with estate.ctx.sessions.begin() as session:
        user_id = session.scalar(select(m.WebUser.id).where(m.WebUser.username == "approver1"))
        for issued_by in ("admin", None):
            session.execute(insert(m.ApiToken).values(
                user_id=user_id, name="planted", token_hash=digest(f"{secret}{issued_by}"),
                issued_by=issued_by, created_at=estate.ctx.clock.now()))
    for issued_by in ("admin", None):
        r = client.get("/api/v1/me", headers=_bearer(f"{secret}{issued_by}"))
        assert r.status_code == 401
    assert client.get("/api/v1/me", headers=_bearer(estate.tokens["approver1"])).status_code == 200


def test_owners_and_administrators_revoke_tokens(client: TestClient, estate: Estate) -> None:
    """A user lists and revokes their own tokens and nobody else's; an administrator lists
    and revokes anyone's; a revoked token stops at once."""
    mine = client.get("/api/v1/tokens", headers=_bearer(estate.tokens["approver1"])).json()
    assert [t["username"] for t in mine["items"]] == ["approver1"]
    r = client.get("/api/v1/tokens", params={"all": "true"},
                   headers=_bearer(estate.tokens["approver1"]))
    assert r.status_code == 403
    everyone = client.get("/api/v1/tokens", params={"all": "true"},
                          headers=_bearer(estate.tokens["admin"])).json()["items"]
    ids = {t["username"]: t["id"] for t in everyone}
    assert len(ids) == len(estate.tokens) and all(t["issued_by"] == t["username"] for t in everyone)
    r = client.post(f"/api/v1/tokens/{ids['approver2']}/revoke",
                    headers=_bearer(estate.tokens["approver1"]))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=_bearer(estate.tokens["approver2"])).status_code == 200
    r = client.post(f"/api/v1/tokens/{ids['approver2']}/revoke",
                    headers=_bearer(estate.tokens["admin"]))
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert client.get("/api/v1/me", headers=_bearer(estate.tokens["approver2"])).status_code == 401
    csrf = sign_in(client, "admin")
    r = client.post(f"/users/tokens/{ids['auditor']}/revoke", data={"csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/v1/me", headers=_bearer(estate.tokens["auditor"])).status_code == 401
    csrf = sign_in(client, "approver1")
    r = client.post(f"/account/tokens/{ids['officer']}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 404
    r = client.post(f"/account/tokens/{ids['approver1']}/revoke", data={"csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/api/v1/me", headers=_bearer(estate.tokens["approver1"])).status_code == 401
    with estate.ctx.sessions() as session:
        revoked = session.scalar(select(func.count()).select_from(m.AuditEvent)
                                 .where(m.AuditEvent.kind == "ApiTokenRevoked"))
    assert revoked == 3


def test_pages_show_tokens_without_their_secrets(client: TestClient, estate: Estate) -> None:
    """The account page lists the user's own tokens and the users page everyone's, each with
    a revoke button; neither shows a secret, and the users page offers no way to make one."""
    csrf = sign_in(client, "approver1")
    page = client.get("/account")
    assert page.status_code == 200 and "approver1 tests" in page.text
    assert "/account/tokens/" in page.text and "admin tests" not in page.text
    made = client.post("/account/tokens", data={"name": "nightly", "csrf_token": csrf})
    assert 'id="new-token"' in made.text
    assert client.get("/account").text.count(TOKEN_PREFIX) == 0
    sign_in(client, "admin")
    users = client.get("/users")
    assert users.status_code == 200
    assert users.text.count("/users/tokens/") == len(estate.tokens) + 1 and "Create token" not in users.text
    assert TOKEN_PREFIX not in users.text
