"""Failed disposals through the REST API and the pages' forms, on SQLite and PostgreSQL:
who may retry or send back, what a refusal says, and that the reason is in every view."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import PASSWORD, Estate, seed, web_config

from retentiond.clock import FixedClock
from retentiond.connectors import ConnectorRegistry
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.review import approve
from retentiond.policy import PolicySet
from retentiond.registry.models import Disposal
from retentiond.web.app import create_app


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=120)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _failed(estate: Estate, n: int = 2) -> list[int]:
    with estate.ctx.sessions() as s:
        ids = list(s.scalars(select(Disposal.id).where(Disposal.state == "pending_review",
                                                       Disposal.approvals_required == 1)
                            .order_by(Disposal.id).limit(n)))
    approve(replace(estate.ctx, actor="approver1"), ids, reason="checked")
    execute_due(estate.ctx, ConnectorRegistry({}, {}), owner="t", batch_size=50, lease_s=60)
    return ids


def _api(client: TestClient, estate: Estate, who: str, path: str, body: dict) -> object:
    return client.post(f"/api/v1/disposals/{path}", json=body,
                       headers={"Authorization": f"Bearer {estate.tokens[who]}"})


def test_api_retry_and_return_to_review(client: TestClient, estate: Estate) -> None:
    """An IG officer retries one failed case and sends another back through the API; the
    queue's JSON carries last_error; approvers and auditors are refused (403), a case that
    is not failed is a 409 naming it, an unknown one a 404."""
    first, second = _failed(estate)
    listed = client.get("/api/v1/disposals?state=failed",
                        headers={"Authorization": f"Bearer {estate.tokens['auditor']}"}).json()
    reasons = {d["id"]: d["last_error"] for d in listed["items"]}
    assert reasons[first].startswith("no connector is configured for system")
    for who in ("approver1", "auditor", "school1"):
        assert _api(client, estate, who, "retry", {"ids": [first], "reason": "x"}).status_code \
            in (403, 404)
    r = _api(client, estate, "officer", "retry", {"ids": [first], "reason": "connector set up"})
    assert r.status_code == 200 and r.json()["items"][0]["state"] == "approved"
    r = _api(client, estate, "officer", "return-to-review",
             {"ids": [second], "reason": "locator to check"})
    assert r.status_code == 200 and r.json()["items"][0]["state"] == "pending_review"
    r = _api(client, estate, "officer", "retry", {"ids": [second], "reason": "again"})
    assert r.status_code == 409 and f"disposal {second}" not in r.json()["detail"]
    assert f"case {second} is pending review: only a failed case" in r.json()["detail"]
    assert _api(client, estate, "officer", "retry",
                {"ids": [2**40], "reason": "x"}).status_code == 404
    assert _api(client, estate, "officer", "retry", {"ids": [first], "reason": " "}).status_code \
        == 422


def _sign_in(client: TestClient, username: str) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"username": username, "password": PASSWORD,
                                "csrf_token": token}, follow_redirects=False)
    account = client.get("/account")
    return re.search(r'name="csrf_token" value="([^"]+)"', account.text).group(1)  # type: ignore[union-attr]


def test_the_retry_form_is_refused_to_an_approver_and_needs_a_reason(client: TestClient,
                                                                     estate: Estate) -> None:
    """The queue's retry form: an approver is refused (403, in words); an officer without a
    reason gets the error summary and the case stays failed; with one, it is retried."""
    (case,) = _failed(estate, 1)
    csrf = _sign_in(client, "approver1")
    r = client.post("/queue/retry", data={"ids": str(case), "reason": "x", "csrf_token": csrf,
                                          "back": "state=failed"})
    assert r.status_code == 403 and "Your role does not let you defer, reject or retry" in r.text
    client.cookies.clear()
    csrf = _sign_in(client, "officer")
    r = client.post("/queue/retry", data={"ids": str(case), "reason": "", "csrf_token": csrf,
                                          "back": "state=failed"})
    assert r.status_code == 400 and "Enter a reason" in r.text
    with estate.ctx.sessions() as s:
        assert s.get_one(Disposal, case).state == "failed"
    r = client.post("/queue/retry", data={"ids": str(case), "reason": "fixed", "csrf_token": csrf,
                                          "back": "state=failed&evil=https://x.example"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/queue?state=failed")
    assert "evil" not in r.headers["location"]
    with estate.ctx.sessions() as s:
        assert s.get_one(Disposal, case).state == "approved"
