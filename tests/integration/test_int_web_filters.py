"""Saved filters and holds scoped by one, through the web pages and the REST API, on SQLite
and PostgreSQL: saving from the queue page, CSRF, who may do what, and a hold placed by a
filter that later is deleted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import PASSWORD, Estate, seed, serve_app

from retentiond.clock import FixedClock
from retentiond.policy import PolicySet
from retentiond.registry.models import AuditEvent, Controller, Disposal, Record, SavedFilter

PUPILS = "education.pupil_record"


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=160)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    with serve_app(estate, policy, clock, tmp_path) as c:
        yield c


def sign_in(c: TestClient, username: str) -> str:
    """Sign in through the form; return the session's CSRF token."""
    c.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert token is not None
    r = c.post("/login", data={"username": username, "password": PASSWORD,
                               "csrf_token": token.group(1), "next": "/account"},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/account").text)
    assert csrf is not None
    return csrf.group(1)


def bearer(estate: Estate, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {estate.tokens[user]}"}


def live_states(estate: Estate, controller: str, category: str | None = None) -> dict[str, int]:
    with estate.ctx.sessions() as s:
        q = (select(Disposal.state, func.count()).join(Record, Record.id == Disposal.record_id)
             .join(Controller, Controller.id == Record.controller_id)
             .where(Controller.code == controller,
                    Disposal.state.in_(("pending_review", "held", "approved")))
             .group_by(Disposal.state))
        if category:
            q = q.where(Record.category == category)
        return {state: int(n) for state, n in s.execute(q)}


def busiest_school(estate: Estate) -> str:
    """The school with the most pupil-record cases pending review (the demo data is random)."""
    with estate.ctx.sessions() as s:
        code = s.scalar(
            select(Controller.code).join(Record, Record.controller_id == Controller.id)
            .join(Disposal, Disposal.record_id == Record.id)
            .where(Disposal.state == "pending_review", Record.category == PUPILS,
                   Controller.code.like("DEMO-SCH-%"))
            .group_by(Controller.code).order_by(func.count().desc(), Controller.code).limit(1))
    assert code is not None
    return code


def test_save_from_the_queue_place_a_hold_by_it_then_lift(client: TestClient,
                                                          estate: Estate) -> None:
    """The queue page offers "Save this filter" with its criteria; a hold placed by the
    filter holds exactly the matching pending cases; lifting returns them to review."""
    school = busiest_school(estate)
    pending = live_states(estate, school, PUPILS)["pending_review"]
    others_before = live_states(estate, "DEMO-LA")
    csrf = sign_in(client, "officer")
    page = client.get(f"/queue?state=pending_review&controller={school}&category={PUPILS}")
    assert 'action="/filters"' in page.text and "Save this filter" in page.text
    assert f'name="controller" value="{school}"' in page.text
    r = client.post("/filters", data={"csrf_token": csrf, "name": "school pupils",
                                      "state": "pending_review", "controller": school,
                                      "category": PUPILS}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/queue?")
    listing = client.get("/filters").text
    assert "school pupils" in listing
    # In words on the page: the category's label, not its code.
    assert f"Records of controller {school} in category &#8220;Pupil educational record&#8221;" \
        in listing.replace("\u201c", "&#8220;").replace("\u201d", "&#8221;")
    r = client.post("/filters", data={"csrf_token": csrf, "name": "school pupils",
                                      "controller": school})
    assert r.status_code == 400
    assert "a saved filter called &#39;school pupils&#39; already exists" in r.text
    form = client.get("/holds?scope_kind=filter&scope_value=school%20pupils").text
    assert 'value="school pupils"' in form and 'id="scope_kind-filter" name="scope_kind" ' \
        'type="radio" value="filter" checked' in form
    r = client.post("/holds", data={"csrf_token": csrf, "scope_kind": "filter",
                                    "scope_value": "school pupils", "hold_type": "legal",
                                    "reason": "claim C-7"}, follow_redirects=False)
    assert r.status_code == 303
    assert live_states(estate, school, PUPILS) == {"held": pending}
    assert live_states(estate, "DEMO-LA") == others_before  # not over-covered
    hold = client.get("/api/v1/holds", headers=bearer(estate, "officer")).json()["items"][0]
    assert hold["scope"] == "filter:school pupils"
    assert hold["criteria"] == {"controller": school, "category": PUPILS}
    page = client.get(f"/holds/{hold['id']}").text
    assert f"Records of controller {school} in category \u201cPupil educational record\u201d" \
        in page
    assert "including records imported after it was placed" in page
    client.post(f"/holds/{hold['id']}/lift", data={"csrf_token": csrf, "reason": "settled"})
    assert live_states(estate, school, PUPILS) == {"pending_review": pending}


def test_csrf_is_required_to_save_or_delete(client: TestClient, estate: Estate) -> None:
    csrf = sign_in(client, "officer")
    r = client.post("/filters", data={"name": "no token", "controller": "DEMO-LA"})
    assert r.status_code == 403
    r = client.post("/api/v1/filters", json={"name": "no token",
                                             "criteria": {"controller": "DEMO-LA"}})
    assert r.status_code == 403
    r = client.post("/api/v1/filters", headers={"X-CSRF-Token": csrf},
                    json={"name": "with token", "criteria": {"controller": "DEMO-LA"}})
    assert r.status_code == 201
    r = client.post(f"/filters/{r.json()['id']}/delete", data={})
    assert r.status_code == 403
    with estate.ctx.sessions() as s:
        assert list(s.scalars(select(SavedFilter.name))) == ["with token"]


@pytest.mark.parametrize("user", ["auditor", "school1", "approver1"])
def test_only_officers_and_admins_save_filters_or_place_holds_by_them(
        client: TestClient, estate: Estate, user: str) -> None:
    saved = client.post("/api/v1/filters", headers=bearer(estate, "admin"),
                        json={"name": "LA", "criteria": {"controller": "DEMO-LA"}}).json()
    r = client.post("/api/v1/filters", headers=bearer(estate, user),
                    json={"name": "mine", "criteria": {"controller": "DEMO-LA"}})
    assert r.status_code == 403
    r = client.delete(f"/api/v1/filters/{saved['id']}", headers=bearer(estate, user))
    assert r.status_code == 403
    r = client.post("/api/v1/holds", headers=bearer(estate, user),
                    json={"scope": "filter:LA", "type": "legal", "reason": "claim"})
    assert r.status_code == 403
    csrf = sign_in(client, user)
    assert "Save this filter" not in client.get("/queue").text
    r = client.post("/filters", data={"csrf_token": csrf, "name": "mine", "controller": "DEMO-LA"})
    assert r.status_code == 403
    with estate.ctx.sessions() as s:
        assert list(s.scalars(select(SavedFilter.name))) == ["LA"]


def test_a_controller_sees_no_filters_and_no_holds(client: TestClient, estate: Estate) -> None:
    """Saved filters and holds name any controller: a controller user sees neither."""
    client.post("/api/v1/filters", headers=bearer(estate, "officer"),
                json={"name": "school two", "criteria": {"controller": "DEMO-SCH-02"}})
    client.post("/api/v1/holds", headers=bearer(estate, "officer"),
                json={"scope": "filter:school two", "type": "legal", "reason": "claim"})
    school = bearer(estate, "school1")
    for path in ("/api/v1/filters", "/api/v1/filters/1", "/api/v1/holds", "/api/v1/holds/1"):
        assert client.get(path, headers=school).status_code == 403, path
    sign_in(client, "school1")
    for path in ("/filters", "/holds", "/holds/1"):
        r = client.get(path)
        assert r.status_code == 403 and "school two" not in r.text, path
    assert "Saved filters" not in client.get("/queue").text
    assert client.get("/api/v1/filters", headers=bearer(estate, "auditor")).json()["items"][0][
        "name"] == "school two"


def test_api_filter_hold_survives_the_filter_being_deleted(client: TestClient,
                                                           estate: Estate) -> None:
    officer = bearer(estate, "officer")
    r = client.post("/api/v1/filters", headers=officer,
                    json={"name": "LA 2029", "criteria": {"controller": "DEMO-LA",
                                                          "due_to": "2029-12-31",
                                                          "state": "pending_review"}})
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["description"] == ("records of controller DEMO-LA due on or before "
                                    "31 December 2029 (in the queue: cases pending review)")
    assert client.get(f"/api/v1/filters/{saved['id']}", headers=officer).json() == saved
    r = client.post("/api/v1/holds", headers=officer,
                    json={"scope": f"filter:{saved['id']}", "type": "police", "reason": "R-1"})
    assert r.status_code == 201, r.text
    hold = r.json()
    assert hold["criteria"] == {"controller": "DEMO-LA", "due_to": "2029-12-31"}
    assert hold["covers"] == ("records of controller DEMO-LA due on or before 31 December 2029 "
                              "(saved filter 'LA 2029')")
    detail = client.get(f"/api/v1/holds/{hold['id']}", headers=officer).json()
    assert len(detail["covers"]) == min(100, hold["records_covered"]) > 0
    assert all(c["controller"] == "DEMO-LA" and c["due_on"] <= "2029-12-31"
               for c in detail["covers"])
    gone = client.delete(f"/api/v1/filters/{saved['id']}", headers=officer)
    assert gone.status_code == 200 and gone.json()["holds"] == [hold["id"]]
    assert client.get(f"/api/v1/filters/{saved['id']}", headers=officer).status_code == 404
    after = client.get(f"/api/v1/holds/{hold['id']}", headers=officer).json()
    assert after == detail
    with estate.ctx.sessions() as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind.in_(("FilterSaved", "HoldPlaced", "FilterDeleted")),
            AuditEvent.actor == "officer").order_by(AuditEvent.id)))
    assert kinds == ["FilterSaved", "HoldPlaced", "FilterDeleted"]


@pytest.mark.parametrize(("criteria", "status", "detail"), [
    ({"controller": "NO-SUCH"}, 400, "controller: no controller 'NO-SUCH' is known"),
    ({"action": "shred"}, 400, "action: 'shred' is not one of"),
    ({"due_from": "2030-01-02", "due_to": "2030-01-01"}, 400, "due_to: must not be before"),
    ({"state": "gone"}, 400, "state: 'gone' is not one of"),
])
def test_api_bad_criteria_name_the_field(client: TestClient, estate: Estate,
                                         criteria: dict[str, str], status: int,
                                         detail: str) -> None:
    r = client.post("/api/v1/filters", headers=bearer(estate, "officer"),
                    json={"name": "bad", "criteria": criteria})
    assert r.status_code == status and detail in r.json()["detail"], r.text


def test_api_unknown_criterion_is_refused(client: TestClient, estate: Estate) -> None:
    r = client.post("/api/v1/filters", headers=bearer(estate, "officer"),
                    json={"name": "bad", "criteria": {"colour": "red"}})
    assert r.status_code == 422 and "colour" in r.text
