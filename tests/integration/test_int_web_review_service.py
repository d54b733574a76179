"""The review service over HTTP on SQLite and PostgreSQL (issue 15): failed disposals
through the REST API and the pages' forms (who may retry or send back, what a refusal says),
the audit trail's totals and pages both ways, the add-user form's refusals, and the policy
preview's list of records in the API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import Estate, form_sign_in, seed, web_config

from retentiond.clock import FixedClock
from retentiond.connectors import ConnectorRegistry
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.review import approve
from retentiond.policy import PolicySet
from retentiond.registry.models import AuditEvent, Disposal, WebUser
from retentiond.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_retry_form_is_refused_to_an_approver_and_needs_a_reason(client: TestClient,
                                                                     estate: Estate) -> None:
    """The queue's retry form: an approver is refused (403, in words); an officer without a
    reason gets the error summary and the case stays failed; with one, it is retried."""
    (case,) = _failed(estate, 1)
    csrf = form_sign_in(client, "approver1")
    r = client.post("/queue/retry", data={"ids": str(case), "reason": "x", "csrf_token": csrf,
                                          "back": "state=failed"})
    assert r.status_code == 403 and "Your role does not let you defer, reject or retry" in r.text
    csrf = form_sign_in(client, "officer")
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


def test_audit_trail_counts_and_pages_both_ways(client: TestClient, estate: Estate) -> None:
    """'Events 1 to 10 of N', 'Page 1 of M'; Next then Previous come back to the same events;
    an ISO date (a link) and a date input's parts search alike."""
    form_sign_in(client, "auditor")
    first = client.get("/audit?limit=10").text
    with estate.ctx.sessions() as s:  # reading the trail writes nothing to it
        total = s.scalar(select(func.count()).select_from(AuditEvent))
    assert f"Events 1 to 10 of {total:,}" in first
    assert f"Page 1 of {-(-total // 10):,}" in first
    nxt = re.search(r'href="(/audit\?[^"]*before_id=\d+)"', first).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = client.get(nxt).text
    assert "Events 11 to 20 of" in second and "Page 2 of" in second
    prev = re.search(r'href="(/audit\?[^"]*after_id=\d+)"', second).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    again = client.get(prev).text
    ids = lambda html: re.findall(r'data-label="Event">(\d+)<', html)  # noqa: E731
    assert ids(again) == ids(first)[: len(ids(again))] and "Events 1 to 10 of" in again
    by_parts = client.get("/audit?since-day=22&since-month=11&since-year=2026").text
    by_iso = client.get("/audit?since=2026-11-22").text
    count = re.compile(r"Events 1 to \d+ of [\d,]+")
    assert count.search(by_parts).group(0) == count.search(by_iso).group(0)  # type: ignore[union-attr]
    bad = client.get("/audit?until-day=40&until-month=1&until-year=2026")
    assert bad.status_code == 400 and 'href="#until-day"' in bad.text


def test_add_user_form_refuses_field_by_field_and_adds_nothing(client: TestClient,
                                                              estate: Estate) -> None:
    """Missing roles, a controller's user without an organisation, a short password and an
    existing name are refused on the form, and no user is added; a good form adds one,
    audited as the admin's act. Only admins may post it."""
    csrf = form_sign_in(client, "officer")
    assert client.post("/users", data={"csrf_token": csrf, "username": "x"}).status_code == 403
    csrf = form_sign_in(client, "admin")
    form = {"csrf_token": csrf, "username": "head@school1", "sign_in": "password",
            "password": "short", "password_again": "short"}
    r = client.post("/users", data={**form, "roles": "controller"})
    assert r.status_code == 400
    assert "Choose the organisation this user belongs to" in r.text
    r = client.post("/users", data={**form, "roles": "controller", "controller": "DEMO-SCH-01"})
    assert r.status_code == 400 and "A password needs at least 12 characters" in r.text
    r = client.post("/users", data={**form, "username": "officer", "roles": "auditor",
                                    "password": "a long enough password",
                                    "password_again": "a long enough password"})
    assert r.status_code == 400 and "exists already" in r.text
    with estate.ctx.sessions() as s:
        assert s.scalar(select(WebUser.id).where(WebUser.username == "head@school1")) is None
    r = client.post("/users", data={**form, "roles": "controller", "controller": "DEMO-SCH-01",
                                    "password": "a long enough password",
                                    "password_again": "a long enough password"},
                    follow_redirects=False)
    assert r.status_code == 303
    with estate.ctx.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.kind == "UserAdded",
                                                   AuditEvent.entity_id == "head@school1")).one()
    assert event.actor == "admin" and event.data["controller"] == "DEMO-SCH-01"


def test_policy_preview_api_lists_the_records_that_would_move(client: TestClient,
                                                             estate: Estate) -> None:
    """Each changed category carries its moved records (at most 200), consistent with its
    counts: every listed record is earlier, later, newly dated or never due."""
    pack = (ROOT / "policies" / "isa-default.toml").read_text(encoding="utf-8")
    r = client.post("/api/v1/policy/preview",
                    json={"pack_text": pack.replace('period = "6y"', 'period = "8y"', 1)},
                    headers={"Authorization": f"Bearer {estate.tokens['officer']}"})
    assert r.status_code == 200
    (move,) = r.json()["moves"]
    moved = move["records_moved"]
    assert len(moved) == min(200, move["records"] - move["unchanged"]) > 0
    assert {m["change"] for m in moved} == {"later"}
    assert all(m["proposed_due_on"] > m["due_on"] for m in moved)


def test_past_the_counted_rows_the_queue_says_so_instead_of_a_wrong_position(
        client: TestClient, estate: Estate, monkeypatch: pytest.MonkeyPatch) -> None:
    """Totals and positions are counted up to a cap; a page beyond it says 'after the first
    N' rather than a position that would be wrong."""
    from retentiond.web import queries

    monkeypatch.setattr(queries, "COUNT_CAP", 6)
    form_sign_in(client, "officer")
    page = client.get("/queue?limit=5").text
    assert "Cases 1 to 5 of more than 6" in page and "Page 1 of more than 2" in page
    nxt = re.search(r'href="(/queue\?[^"]*after=[^"]+)"', page).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    second = client.get(nxt).text
    assert "Cases 6 to 10 of more than 6" in second
    nxt = re.search(r'href="(/queue\?[^"]*after=[^"]+)"', second).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    third = client.get(nxt).text
    assert "Cases after the first 6" in third and "Cases 7 to" not in third
