"""The review service's behaviour through HTTP, on SQLite and PostgreSQL: sign-in and
sessions, CSRF, throttling, controller isolation, review actions, holds, exports, audit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import PASSWORD, Estate, seed, sign_in, web_config

from retentiond.clock import FixedClock
from retentiond.policy import PolicySet
from retentiond.registry.models import AuditEvent, Controller, Disposal, Record
from retentiond.web.app import create_app
from retentiond.web.exports import decrypt_xlsx


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=160)


@pytest.fixture
def app_client(estate: Estate, policy: PolicySet, clock: FixedClock,
               tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path, login_max_failures=3),
                     policy=policy, clock=clock, sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def pending(estate: Estate, *, approvals: int | None = None,
            controller: str | None = None) -> list[int]:
    with estate.ctx.sessions() as s:
        q = (select(Disposal.id).join(Record, Record.id == Disposal.record_id)
             .join(Controller, Controller.id == Record.controller_id)
             .where(Disposal.state == "pending_review").order_by(Disposal.id))
        if approvals is not None:
            q = q.where(Disposal.approvals_required == approvals)
        if controller is not None:
            q = q.where(Controller.code == controller)
        return list(s.scalars(q))


def test_session_cookie_flags(app_client: TestClient) -> None:
    """The session cookie is Secure, HttpOnly, SameSite=Lax and __Host- prefixed."""
    page = app_client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = app_client.post("/login", data={"username": "officer", "password": PASSWORD,
                                        "csrf_token": token}, follow_redirects=False)
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith("__Host-retentiond="))
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag in cookie


def test_login_form_without_its_csrf_token_is_refused(app_client: TestClient) -> None:
    """A sign-in posted from elsewhere (no login CSRF token) does not sign in."""
    r = app_client.post("/login", data={"username": "officer", "password": PASSWORD,
                                        "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 400
    assert "There is a problem" in r.text


def test_throttling_refuses_even_the_right_password(app_client: TestClient, estate: Estate) -> None:
    """After 3 failures (the configured limit) the right password is refused for a while."""
    r = app_client.get("/login")
    for password in ["wrong password!"] * 3 + [PASSWORD]:
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
        r = app_client.post("/login", data={"username": "auditor", "password": password,
                                            "csrf_token": token})
        assert r.status_code == 400
    assert r.status_code == 400 and "Too many failed attempts" in r.text
    with estate.ctx.sessions() as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(AuditEvent.entity_id == "auditor")))
    assert kinds.count("SignInFailed") == 3 and "SignInThrottled" in kinds


def test_idle_and_absolute_timeouts_end_a_session(app_client: TestClient, clock: FixedClock) -> None:
    """A session idle for 30 minutes is over; so is one 12 hours old however active."""
    sign_in(app_client, "officer")
    start = clock.instant
    clock.instant = start + dt.timedelta(minutes=29)
    assert app_client.get("/queue", follow_redirects=False).status_code == 200
    clock.instant = start + dt.timedelta(minutes=29 + 31)
    assert app_client.get("/queue", follow_redirects=False).status_code == 303
    sign_in(app_client, "officer")
    start = clock.instant
    for step in range(1, 13 * 3):
        clock.instant = start + dt.timedelta(minutes=20 * step)
        status = app_client.get("/account", follow_redirects=False).status_code
        if status != 200:
            break
    assert status == 303 and clock.instant - start <= dt.timedelta(hours=12, minutes=20)


def test_disabling_a_user_ends_their_session_and_tokens(app_client: TestClient, estate: Estate) -> None:
    """Revocation is immediate: a disabled user's cookie and API token stop working."""
    from retentiond.web.accounts import disable_user

    sign_in(app_client, "approver2")
    assert app_client.get("/queue").status_code == 200
    disable_user(estate.ctx, "approver2")
    assert app_client.get("/queue", follow_redirects=False).status_code == 303
    r = app_client.get("/api/v1/me", headers={"Authorization": f"Bearer {estate.tokens['approver2']}"})
    assert r.status_code == 401


def test_form_posts_need_the_session_csrf_token(app_client: TestClient, estate: Estate) -> None:
    """A state-changing form without the session's CSRF token is refused and changes nothing."""
    csrf = sign_in(app_client, "approver1")
    ids = pending(estate, approvals=1)[:1]
    r = app_client.post("/queue/approve", data={"ids": ids, "reason": "ok"})
    assert r.status_code == 403
    assert pending(estate, approvals=1)[:1] == ids
    r = app_client.post("/queue/approve", data={"ids": ids, "reason": "ok", "csrf_token": csrf},
                        follow_redirects=False)
    assert r.status_code == 303
    assert ids[0] not in pending(estate, approvals=1)


def test_two_approver_rule_needs_two_different_people(app_client: TestClient, estate: Estate) -> None:
    """A case whose rule needs two approvals is approved only by a second, different person."""
    case = pending(estate, approvals=2)[0]
    csrf = sign_in(app_client, "approver1")
    app_client.post("/queue/approve", data={"ids": [case], "reason": "first", "csrf_token": csrf})
    r = app_client.post("/queue/approve", data={"ids": [case], "reason": "again", "csrf_token": csrf})
    assert r.status_code == 400 and "already approved" in r.text
    csrf = sign_in(app_client, "approver2")
    app_client.post("/queue/approve", data={"ids": [case], "reason": "second", "csrf_token": csrf})
    with estate.ctx.sessions() as s:
        assert s.get(Disposal, case).state == "approved"  # type: ignore[union-attr]


def test_defer_and_hold_many_at_once(app_client: TestClient, estate: Estate, clock: FixedClock) -> None:
    """Selecting several cases defers them (reason and date) or holds them in one action."""
    ids = pending(estate)[:4]
    csrf = sign_in(app_client, "officer")
    until = clock.today() + dt.timedelta(days=90)
    r = app_client.post("/queue/defer", data={
        "ids": ids[:2], "reason": "case review pending", "csrf_token": csrf,
        "until-day": str(until.day), "until-month": str(until.month), "until-year": str(until.year)},
        follow_redirects=False)
    assert r.status_code == 303
    r = app_client.post("/queue/hold", data={"ids": ids[2:], "reason": "SAR 2026/118",
                                              "hold_type": "subject_access", "csrf_token": csrf},
                        follow_redirects=False)
    assert r.status_code == 303
    with estate.ctx.sessions() as s:
        states = [s.get(Disposal, i).state for i in ids]  # type: ignore[union-attr]
    assert states == ["deferred", "deferred", "held", "held"]


def test_controller_sees_only_its_own(app_client: TestClient, estate: Estate) -> None:
    """A controller user sees its own cases and records only, even by typing another's URL."""
    headers = {"Authorization": f"Bearer {estate.tokens['school1']}"}
    page = app_client.get("/api/v1/disposals?limit=500&state=", headers=headers).json()
    assert page["items"] and {d["controller"] for d in page["items"]} == {"DEMO-SCH-01"}
    with estate.ctx.sessions() as s:
        other = s.scalar(select(Record.record_key).join(Controller)
                         .where(Controller.code == "DEMO-SCH-02").limit(1))
    assert app_client.get(f"/api/v1/records/{other}", headers=headers).status_code == 404
    theirs = pending(estate, controller="DEMO-SCH-02")[:1]
    csv_text = app_client.get("/queue/export.csv?state=", headers=headers).text
    assert "DEMO-SCH-02" not in csv_text and "DEMO-SCH-01" in csv_text
    sign_in(app_client, "school1")
    assert app_client.get(f"/records/{other}").status_code == 404
    assert "DEMO-SCH-02" not in app_client.get("/queue?state=").text
    assert "DEMO-SCH-02" not in app_client.get("/dashboard").text
    assert app_client.get("/queue?controller=DEMO-SCH-02").text.count("/records/") == 0
    # the approve route is not theirs at all, and other controllers' ids are not even named
    headers_admin = {"Authorization": f"Bearer {estate.tokens['approver1']}"}
    assert app_client.get("/api/v1/disposals?limit=1", headers=headers_admin).status_code == 200
    assert theirs


def test_record_page_explains_and_is_audited(app_client: TestClient, estate: Estate) -> None:
    """The record page says why in plain English, and the view is an audit event."""
    with estate.ctx.sessions() as s:
        key = s.scalar(select(Record.record_key).where(Record.category == "education.pupil_record",
                                                       Record.due_on.is_not(None)).limit(1))
    sign_in(app_client, "auditor")
    text = app_client.get(f"/records/{key}").text
    assert re.search(r"(Due|Was due) on \d{1,2} \w+ \d{4}: 25th birthday of a subject born", text)
    assert "under rule isa.education.pupil_record citing" in text
    with estate.ctx.sessions() as s:
        viewed = s.scalar(select(AuditEvent).where(AuditEvent.kind == "RecordViewed",
                                                   AuditEvent.entity_id == key))
    assert viewed is not None and viewed.actor == "auditor"


def test_place_and_lift_a_hold(app_client: TestClient, estate: Estate) -> None:
    """A hold placed on a controller holds its pending cases; lifting returns them to review."""
    before = set(pending(estate, controller="DEMO-SCH-03"))
    csrf = sign_in(app_client, "officer")
    r = app_client.post("/holds", data={"scope_kind": "controller", "scope_value": "DEMO-SCH-03",
                                        "hold_type": "legal", "reason": "litigation L-1",
                                        "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert not set(pending(estate, controller="DEMO-SCH-03"))
    officer = {"Authorization": f"Bearer {estate.tokens['officer']}"}
    holds = app_client.get("/api/v1/holds", headers=officer).json()
    hold_id = next(h["id"] for h in holds["items"] if h["scope"] == "controller:DEMO-SCH-03")
    assert "litigation L-1" in app_client.get(f"/holds/{hold_id}").text
    r = app_client.post(f"/holds/{hold_id}/lift", data={"reason": "", "csrf_token": csrf})
    assert r.status_code == 400 and "Enter the reason" in r.text
    app_client.post(f"/holds/{hold_id}/lift", data={"reason": "settled", "csrf_token": csrf})
    assert set(pending(estate, controller="DEMO-SCH-03")) == before


def test_xlsx_export_is_encrypted_and_pseudonymised(app_client: TestClient, estate: Estate) -> None:
    """The XLSX export opens only with its password and carries no record ids in clear."""
    csrf = sign_in(app_client, "auditor")
    r = app_client.post("/queue/export.xlsx?state=pending_review",
                        data={"password": "a long export password", "csrf_token": csrf})
    assert r.status_code == 200 and r.content[:8] == bytes.fromhex("d0cf11e0a1b11ae1")
    rows = decrypt_xlsx(r.content, "a long export password")
    assert rows[0][:3] == ["id", "record_id", "category"]
    assert len(rows) - 1 == len(pending(estate))
    assert all(str(row[1]).startswith("p:") for row in rows[1:])
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do
        decrypt_xlsx(r.content, "the wrong password")
    r = app_client.post("/queue/export.xlsx", data={"password": "short", "csrf_token": csrf})
    assert r.status_code == 400


def test_policy_preview_counts_moves(app_client: TestClient, policy: PolicySet, estate: Estate) -> None:
    """Shortening the education rule shows records due earlier, by category, applying nothing;
    the preview is audited."""
    pack = Path(policy.packs[0].path).read_text().replace('period = "25y"', 'period = "21y"')
    csrf = sign_in(app_client, "officer")
    r = app_client.post("/policy/preview", data={"pack_text": pack, "csrf_token": csrf})
    assert r.status_code == 200
    assert "education.pupil_record" in r.text and "Due earlier" in r.text
    api = app_client.post("/api/v1/policy/preview", json={"pack_text": pack},
                          headers={"X-CSRF-Token": csrf}).json()
    move = api["moves"][0]
    assert api["changed_categories"] == ["education.pupil_record"]
    assert move["earlier"] > 0 and move["later"] == 0
    bad = app_client.post("/api/v1/policy/preview", json={"pack_text": "[pack]\nname = 1"},
                          headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 400
    with estate.ctx.sessions() as s:
        previews = list(s.scalars(select(AuditEvent.actor).where(AuditEvent.kind == "PolicyPreviewed")))
    assert previews == ["officer", "officer"]


def test_api_review_actions(app_client: TestClient, estate: Estate, clock: FixedClock) -> None:
    """The API approves and defers like the pages, and refuses what the lifecycle refuses."""
    approver = {"Authorization": f"Bearer {estate.tokens['approver1']}"}
    officer = {"Authorization": f"Bearer {estate.tokens['officer']}"}
    one = pending(estate, approvals=1)[:2]
    r = app_client.post("/api/v1/disposals/approve", json={"ids": one, "reason": "ok"}, headers=approver)
    assert r.status_code == 200 and {d["state"] for d in r.json()["items"]} == {"approved"}
    r = app_client.post("/api/v1/disposals/approve", json={"ids": one, "reason": "ok"}, headers=officer)
    assert r.status_code == 403
    until = (clock.today() + dt.timedelta(days=30)).isoformat()
    r = app_client.post("/api/v1/disposals/defer", json={"ids": [999999], "reason": "x", "until": until},
                        headers=officer)
    assert r.status_code == 404
    r = app_client.post("/api/v1/disposals/defer", json={"ids": one[:1], "reason": "x",
                                                         "until": clock.today().isoformat()},
                        headers=officer)
    assert r.status_code == 409


def test_dashboard_chart_is_an_svg_with_a_text_alternative(app_client: TestClient) -> None:
    """The chart is a server-side SVG picture with a title and a description, plus the table."""
    sign_in(app_client, "auditor")
    text = app_client.get("/dashboard").text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in text and 'role="img"' in text
    assert '<desc id="chart-desc">' in text and "records fall due from" in text
    svg = app_client.get("/dashboard/chart.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")


def test_data_not_found_is_shown_and_approving_it_must_be_acknowledged(
        app_client: TestClient, estate: Estate, clock: FixedClock) -> None:
    """A case whose data its holding system did not find is tagged on the queue and warned of
    on the record page; approving it without the acknowledgement is refused (nothing
    applied), with it the approval is recorded and says so."""
    from retentiond.lifecycle.presence import locator_digest
    from retentiond.registry.models import RecordPresence

    case = pending(estate, approvals=1)[0]
    with estate.ctx.sessions.begin() as s:
        record = s.get_one(Record, s.get_one(Disposal, case).record_id)
        s.add(RecordPresence(record_id=record.id, system=record.system or "mis",
                             locator_sha256=locator_digest(record.system or "mis",
                                                           record.locator),
                             found=False, checked_at=clock.now()))
        if record.system is None:
            record.system = "mis"
        key = record.record_key
    csrf = sign_in(app_client, "approver1")
    assert "Not found in the holding system" in app_client.get("/queue").text
    assert "Not found in the holding system" in app_client.get(f"/records/{key}").text
    r = app_client.post("/queue/approve", data={"ids": [case], "reason": "due",
                                                "csrf_token": csrf})
    assert r.status_code == 400 and "not found in" in r.text
    assert case in pending(estate, approvals=1)
    r = app_client.post("/queue/approve", data={"ids": [case], "reason": "due; checked",
                                                "acknowledge_not_found": "yes",
                                                "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and case not in pending(estate, approvals=1)
    with estate.ctx.sessions() as s:
        data = s.scalars(select(AuditEvent.data).where(
            AuditEvent.kind == "DisposalApproved", AuditEvent.entity_id == str(case))).one()
    assert "acknowledged_not_found" in data
