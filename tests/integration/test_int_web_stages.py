"""Scoped reviewers, exceptions and comments through the web app and the REST API, on real
SQLite and PostgreSQL (issue 14): a reviewer scoped to one school sees and acts only on its
cases (queue, record page, dashboard counts, API); an id out of scope is "not found"; an
exception and a comment show in the record's history in words."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import Estate, seed, sign_in, web_config

from retentiond.clock import FixedClock
from retentiond.lifecycle.groups import add_group, add_member, set_scope
from retentiond.policy import PolicySet
from retentiond.registry.models import Controller, Disposal, Record
from retentiond.web.app import create_app

SCHOOL = "DEMO-SCH-01"


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    estate = seed(database_url, policy, clock, records=160)
    ctx = dataclasses.replace(estate.ctx, actor="admin")
    add_group(ctx, "service-managers")
    add_member(ctx, "service-managers", "approver1")
    set_scope(ctx, "group", "service-managers", controllers=[SCHOOL], categories=[])
    return estate


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _pending(estate: Estate, *, inside: bool) -> list[tuple[int, str]]:
    with estate.ctx.sessions() as s:
        q = (select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
             .join(Controller, Controller.id == Record.controller_id)
             .where(Disposal.state == "pending_review",
                    (Controller.code == SCHOOL) if inside else (Controller.code != SCHOOL))
             .order_by(Disposal.id))
        return [(i, k) for i, k in s.execute(q)]


def _bearer(estate: Estate, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {estate.tokens[user]}"}


def test_scoped_reviewer_sees_only_their_school(client: TestClient, estate: Estate) -> None:
    r = client.get("/api/v1/disposals?limit=500", headers=_bearer(estate, "approver1"))
    assert r.status_code == 200
    mine = {d["controller"] for d in r.json()["items"]}
    assert mine == {SCHOOL}
    everyone = client.get("/api/v1/disposals?limit=500", headers=_bearer(estate, "approver2"))
    assert len({d["controller"] for d in everyone.json()["items"]}) > 1
    assert r.json()["total"] == len(_pending(estate, inside=True))


def test_out_of_scope_id_through_the_api_is_not_found(client: TestClient,
                                                      estate: Estate) -> None:
    (other, _), *_ = _pending(estate, inside=False)
    for path, body in (("/api/v1/disposals/approve", {"ids": [other], "reason": "x"}),
                       ("/api/v1/disposals/exception", {"ids": [other], "reason": "x"})):
        r = client.post(path, json=body, headers=_bearer(estate, "approver1"))
        assert r.status_code == 404, (path, r.text)
        assert f"no disposal {other}" in r.json()["detail"]
    r = client.post(f"/api/v1/disposals/{other}/comment", json={"text": "x"},
                    headers=_bearer(estate, "approver1"))
    assert r.status_code == 404
    with estate.ctx.sessions() as s:
        assert s.get(Disposal, other).state == "pending_review"


def test_scoped_pages(client: TestClient, estate: Estate) -> None:
    (_, inside), *_ = _pending(estate, inside=True)
    (_, outside), *_ = _pending(estate, inside=False)
    sign_in(client, "approver1")
    assert client.get(f"/records/{inside}").status_code == 200
    assert client.get(f"/records/{outside}").status_code == 404
    queue = client.get("/queue?limit=500").text
    assert outside not in queue and inside in queue
    # The dashboard's counts (its API twin reads the same numbers).
    mine = client.get("/api/v1/dashboard", headers=_bearer(estate, "approver1")).json()
    theirs = client.get("/api/v1/dashboard", headers=_bearer(estate, "approver2")).json()
    assert mine["by_state"]["pending_review"] == len(_pending(estate, inside=True))
    assert theirs["by_state"]["pending_review"] == (len(_pending(estate, inside=True))
                                                    + len(_pending(estate, inside=False)))


def test_exception_and_comment_show_in_the_history(client: TestClient, estate: Estate) -> None:
    (case, key), *_ = _pending(estate, inside=True)
    r = client.post("/api/v1/disposals/exception", json={"ids": [case],
                    "reason": "the category looks wrong"}, headers=_bearer(estate, "approver1"))
    assert r.status_code == 200 and r.json()["items"][0]["state"] == "exception"
    r = client.post(f"/api/v1/disposals/{case}/comment", json={"text": "asked the school"},
                    headers=_bearer(estate, "approver2"))
    assert r.status_code == 200 and r.json()["state"] == "exception"
    # The auditor may read, never raise or comment.
    r = client.post(f"/api/v1/disposals/{case}/comment", json={"text": "x"},
                    headers=_bearer(estate, "auditor"))
    assert r.status_code == 403
    sign_in(client, "officer")
    page = client.get(f"/records/{key}").text
    for words in ("Exception raised: back to the IG officer", "the category looks wrong",
                  "Comment", "asked the school", "Exception raised",
                  "Send this case on to review"):
        assert words in page, words
    r = client.post("/api/v1/disposals/resume", json={"ids": [case], "reason": "checked"},
                    headers=_bearer(estate, "officer"))
    assert r.status_code == 200 and r.json()["items"][0]["state"] == "pending_review"
    r = client.post("/api/v1/disposals/resume", json={"ids": [case], "reason": "checked"},
                    headers=_bearer(estate, "approver1"))
    assert r.status_code == 403


def _csrf(client: TestClient, path: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def test_admin_manages_review_groups_on_their_page(client: TestClient, estate: Estate) -> None:
    sign_in(client, "admin")
    page = client.get("/groups")
    assert page.status_code == 200 and "service-managers" in page.text
    token = _csrf(client, "/groups")
    r = client.post("/groups", data={"csrf_token": token, "name": "IG", "label": "IG team"},
                    follow_redirects=True)
    assert "Review group ig is added." in r.text
    r = client.post("/groups", data={"csrf_token": token, "name": "i g"})
    assert r.status_code == 400 and "is not allowed in a group name" in r.text
    r = client.post("/groups/ig/members", data={"csrf_token": token, "username": "officer"},
                    follow_redirects=True)
    assert "officer is a member of ig." in r.text
    r = client.post("/groups/ig/members", data={"csrf_token": token, "username": "nobody.x"})
    assert r.status_code == 400 and "There is no user" in r.text
    r = client.post("/groups/ig/scope", data={"csrf_token": token, "controllers": [SCHOOL],
                                               "categories": ["education.pupil_record"]},
                    follow_redirects=True)
    assert "Group ig&#39;s scope is saved." in r.text or "Group ig's scope is saved." in r.text
    from retentiond.lifecycle.groups import show_group

    group = show_group(estate.ctx, "ig")
    assert group.members == ("officer",)
    assert group.scope == ((SCHOOL, "education.pupil_record"),)
    r = client.post("/groups/ig/members/officer/remove", data={"csrf_token": token},
                    follow_redirects=True)
    assert "officer is no longer a member of ig." in r.text
    # Only administrators manage groups.
    sign_in(client, "officer")
    assert client.get("/groups").status_code == 403


def test_admin_sets_and_clears_a_users_own_scope(client: TestClient, estate: Estate) -> None:
    """On the Users page an administrator limits one user to a school and a category and
    clears it again, with the Review groups page's form; each change is audited as the
    command line's is; a name that is no controller is refused on the form; nobody else may."""
    from retentiond.lifecycle.groups import user_scope
    from retentiond.registry.models import AuditEvent

    sign_in(client, "admin")
    page = client.get("/users")
    assert page.status_code == 200 and 'action="/users/approver1/scope"' in page.text
    token = _csrf(client, "/users")
    r = client.post("/users/approver1/scope", data={
        "csrf_token": token, "controllers": [SCHOOL], "categories": ["education.pupil_record"]},
        follow_redirects=True)
    assert r.status_code == 200 and "scope is saved" in r.text
    assert user_scope(estate.ctx, "approver1") == ((SCHOOL, "education.pupil_record"),)
    assert f"approver1: {SCHOOL}" in r.text
    refused = client.post("/users/approver1/scope", data={"csrf_token": token,
                                                          "controllers": ["NO-SUCH-SCHOOL"]})
    assert refused.status_code == 400 and "There is no controller" in refused.text
    assert user_scope(estate.ctx, "approver1") == ((SCHOOL, "education.pupil_record"),)
    r = client.post("/users/approver1/scope", data={"csrf_token": token}, follow_redirects=True)
    assert "approver1 has no scope of their own." in r.text
    assert user_scope(estate.ctx, "approver1") == ()
    assert client.post("/users/nobody.x/scope", data={"csrf_token": token}).status_code == 400
    with estate.ctx.sessions() as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "ReviewScopeSet", AuditEvent.entity == "user",
            AuditEvent.entity_id == "approver1").order_by(AuditEvent.id)).all()
    assert [(e.actor, e.data["after"]) for e in events] == [
        ("admin", [[SCHOOL, "education.pupil_record"]]), ("admin", [])]
    # Without the CSRF token nothing changes; an IG officer may not set scopes.
    assert client.post("/users/approver1/scope", data={"controllers": [SCHOOL]}).status_code == 403
    sign_in(client, "officer")
    officer_token = _csrf(client, "/queue")
    r = client.post("/users/approver1/scope", data={"csrf_token": officer_token,
                                                    "controllers": [SCHOOL]})
    assert r.status_code == 403 and user_scope(estate.ctx, "approver1") == ()
