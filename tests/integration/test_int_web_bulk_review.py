"""Bulk review by filter through the web app on SQLite and PostgreSQL: the queue's "select all
cases matching this filter", the confirmation page's count, the refused stale count, and the
API (issue 14, item 5)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import Estate, seed, sign_in, web_config

from retentiond.audit.chain import verify
from retentiond.clock import FixedClock
from retentiond.lifecycle.holds import place_hold
from retentiond.policy import PolicySet
from retentiond.registry.models import AuditEvent, Controller, Disposal, Record
from retentiond.web.app import create_app


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=160)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _pending(estate: Estate, controller: str | None = None) -> list[tuple[int, str]]:
    with estate.ctx.sessions() as s:
        q = (select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
             .join(Controller, Controller.id == Record.controller_id)
             .where(Disposal.state == "pending_review").order_by(Disposal.id))
        if controller:
            q = q.where(Controller.code == controller)
        return [(i, k) for i, k in s.execute(q)]


def _busiest(estate: Estate) -> str:
    with estate.ctx.sessions() as s:
        return str(s.execute(
            select(Controller.code, func.count()).join(Record, Record.controller_id == Controller.id)
            .join(Disposal, Disposal.record_id == Record.id)
            .where(Disposal.state == "pending_review")
            .group_by(Controller.code).order_by(func.count().desc(), Controller.code)).first()[0])


def test_select_all_matching_then_confirm(client: TestClient, estate: Estate) -> None:
    """From the queue filtered to one controller: the link counts every matching case, the
    confirmation page says how many will be approved and how many are left out and why, and
    confirming approves exactly those; the flash message says what happened."""
    code = _busiest(estate)
    cases = _pending(estate, code)
    assert len(cases) >= 3
    place_hold(estate.ctx, scope=f"record:{cases[0][1]}", hold_type="legal", reason="claim")
    csrf = sign_in(client, "approver1")
    queue = client.get(f"/queue?controller={code}&state=any")
    link = re.search(r'href="(/queue/matching\?verb=approve[^"]+)"', queue.text)
    assert link, queue.text[-3000:]
    assert "matching this filter" in queue.text
    page = client.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    n = len(cases) - 1
    assert f"{n} cases will be approved" in page.text or f"{n:,} cases will be approved" in page.text
    assert "1 is under a hold" in page.text
    expected = re.search(r'name="expected" value="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    back = re.search(r'name="back" value="([^"]*)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/queue/matching/approve", data={
        "csrf_token": csrf, "back": back.replace("&amp;", "&"), "expected": expected,
        "reason": "reviewed as a batch"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:2000]
    with estate.ctx.sessions() as s:
        approvals = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind.in_(("DisposalApproved", "DisposalApprovalRecorded")),
            AuditEvent.actor == "approver1"))
        assert approvals == n
        assert verify(s).ok
    followed = client.get(r.headers["location"])
    assert f"Approval recorded for {n} cases" in followed.text
    assert "Left out: 1 is under a hold" in followed.text


def test_stale_count_is_refused_on_the_page(client: TestClient, estate: Estate) -> None:
    """A hold placed after the page was shown changes the count: the form comes back with the
    new numbers and an error, and nothing is approved."""
    code = _busiest(estate)
    cases = _pending(estate, code)
    csrf = sign_in(client, "approver1")
    back = f"controller={code}&state=pending_review"
    page = client.get("/queue/matching", params={"verb": "approve", "back": back})
    expected = re.search(r'name="expected" value="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    place_hold(estate.ctx, scope=f"record:{cases[0][1]}", hold_type="legal", reason="claim")
    r = client.post("/queue/matching/approve", data={
        "csrf_token": csrf, "back": back, "expected": expected, "reason": "batch"})
    assert r.status_code == 400
    assert "changed since you looked" in r.text
    assert f'name="expected" value="{int(expected) - 1}"' in r.text
    with estate.ctx.sessions() as s:
        assert not s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor == "approver1", AuditEvent.kind.like("Disposal%")))


def test_reason_is_required_on_the_page(client: TestClient, estate: Estate) -> None:
    """Confirming without a visible reason is refused with the field named; nothing changes."""
    code = _busiest(estate)
    csrf = sign_in(client, "officer")
    back = f"controller={code}"
    page = client.get("/queue/matching", params={"verb": "reject", "back": back})
    expected = re.search(r'name="expected" value="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    r = client.post("/queue/matching/reject", data={
        "csrf_token": csrf, "back": back, "expected": expected, "reason": "\u200b "})
    assert r.status_code == 400 and "Enter a reason" in r.text
    assert len(_pending(estate, code)) == int(expected)


def test_a_role_without_the_permission_gets_no_page(client: TestClient, estate: Estate) -> None:
    """An auditor (no approve permission) is refused the approval page and sees no links."""
    sign_in(client, "auditor")
    assert client.get("/queue/matching", params={"verb": "approve"}).status_code == 403
    assert "/queue/matching" not in client.get("/queue").text


def test_api_preview_then_act(client: TestClient, estate: Estate) -> None:
    """Through the API: the preview's ``acting`` is accepted as ``expected``, a wrong one is a
    409 with nothing changed, bad criteria a 400 naming the field, and the officer (no approve
    permission) gets a 403 from the approval preview."""
    code = _busiest(estate)
    auth = {"Authorization": f"Bearer {estate.tokens['approver2']}"}
    body = {"verb": "approve", "criteria": {"controller": code, "state": "pending_review"}}
    query = {"verb": "approve", "controller": code, "state": "pending_review"}
    preview = client.get("/api/v1/disposals/matching", params=query, headers=auth)
    assert preview.status_code == 200, preview.text
    acting = preview.json()["acting"]
    assert acting == len(_pending(estate, code))
    act = {"criteria": body["criteria"], "reason": "api batch"}
    wrong = client.post("/api/v1/disposals/approve-matching", json={**act, "expected": acting + 1},
                        headers=auth)
    assert wrong.status_code == 409 and "nothing was changed" in wrong.json()["detail"]
    assert len(_pending(estate, code)) == acting
    done = client.post("/api/v1/disposals/approve-matching", json={**act, "expected": acting},
                       headers=auth)
    assert done.status_code == 200, done.text
    assert done.json()["acted"] == acting
    bad = client.get("/api/v1/disposals/matching", headers=auth,
                     params={"verb": "approve", "state": "nonsense"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("criteria.state")
    officer = {"Authorization": f"Bearer {estate.tokens['officer']}"}
    assert client.get("/api/v1/disposals/matching", params=query,
                      headers=officer).status_code == 403


def test_api_exception_matching(client: TestClient, estate: Estate) -> None:
    """An approver raises exceptions on a controller's pending cases through the API: the
    cases go back to the IG officer; the preview's count is the guard."""
    code = _busiest(estate)
    auth = {"Authorization": f"Bearer {estate.tokens['approver2']}"}
    criteria = {"controller": code, "state": "pending_review"}
    preview = client.get("/api/v1/disposals/matching", headers=auth,
                         params={"verb": "exception", **criteria})
    acting = preview.json()["acting"]
    assert acting == len(_pending(estate, code))
    done = client.post("/api/v1/disposals/exception-matching", headers=auth, json={
        "criteria": criteria, "expected": acting, "reason": "facts look wrong"})
    assert done.status_code == 200, done.text
    assert _pending(estate, code) == []
    with estate.ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Disposal).where(
            Disposal.state == "exception")) == acting
