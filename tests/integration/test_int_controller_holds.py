"""Controller users see council business? No (issue 11, item 6), on SQLite and PostgreSQL: a
school's user sees that its record is held, never the hold's type, reason, author or lift
reason, in pages, the API, exports and history rows. The council's officers still see all."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import Estate, seed, serve_app

from retentiond.clock import FixedClock
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.policy import PolicySet
from retentiond.registry.models import Controller, Disposal, Record
from retentiond.web.roles import ROLE_PERMISSIONS, VIEW_HOLD_DETAILS

OFFICER = "d.naylor.ig"
PLACED = ("Police investigation into a member of staff at the school (Operation Kestrel, "
          "DS Whitcombe): preserve every record about the pupils in her class")
LIFTED = "Police confirmed no further action; CPS decision letter 2026-10-01"
STILL = "Complaint C-2291 by a parent about the head teacher, awaiting the ombudsman"
SECRETS = (PLACED, LIFTED, STILL, "Operation Kestrel", "Whitcombe", "C-2291", "ombudsman",
           OFFICER)


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=160)


@pytest.fixture
def held(estate: Estate) -> tuple[str, str]:
    """Two pending records of DEMO-SCH-01: one held (a police hold placed, lifted; then a
    complaint hold), one returned to review after its police hold was lifted."""
    with estate.ctx.sessions() as s:
        keys = list(s.scalars(
            select(Record.record_key).join(Disposal, Disposal.record_id == Record.id)
            .join(Controller, Controller.id == Record.controller_id)
            .where(Controller.code == "DEMO-SCH-01", Disposal.state == "pending_review")
            .order_by(Record.record_key).limit(2)))
    assert len(keys) == 2
    officer = dataclasses.replace(estate.ctx, actor=OFFICER)
    for key in keys:
        hold = place_hold(officer, scope=f"record:{key}", hold_type="police", reason=PLACED)
        lift_hold(officer, hold.id, reason=LIFTED)
    place_hold(officer, scope=f"record:{keys[0]}", hold_type="complaint", reason=STILL)
    return keys[0], keys[1]


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    with serve_app(estate, policy, clock, tmp_path) as c:
        yield c


def _as(estate: Estate, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {estate.tokens[user]}"}


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_controller_sees_held_but_not_why_or_by_whom(estate: Estate, held: tuple[str, str],
                                                     client: TestClient) -> None:
    """The record (page and API), the queue (page and API), its CSV export and the dashboard
    say the record is held, and never the hold's type, reason, author or lift reason."""
    key, returned = held
    school = _as(estate, "school1")
    doc = client.get(f"/api/v1/records/{key}", headers=school)
    assert doc.status_code == 200
    body = doc.json()
    assert body["state"] == "held" and len(body["holds"]) == 1
    assert body["holds"] == [{"id": None, "scope": None, "type": None, "reason": None,
                              "until": None}]
    assert not _leaks(doc.text), _leaks(doc.text)
    kinds = [e["event"] for e in body["history"]]
    assert kinds.count("DisposalHeld") == 2 and "DisposalReturnedToReview" in kinds
    assert {e["actor"] for e in body["history"] if e["event"] in
            ("DisposalHeld", "DisposalReturnedToReview")} == {"(not shown)"}
    page = client.get(f"/records/{key}", headers=school)
    assert page.status_code == 200 and "A hold placed by the council covers" in page.text
    assert not _leaks(page.text) and not re.search(r">\s*(police|complaint)\s*<", page.text)
    lifted = client.get(f"/api/v1/records/{returned}", headers=school)
    assert lifted.json()["holds"] == [] and not _leaks(lifted.text)
    for path in ("/api/v1/disposals?state=held", "/api/v1/disposals?state=pending_review&limit=500",
                 "/queue?state=held", "/queue?state=pending_review&limit=200",
                 "/queue/export.csv?state=", "/api/v1/dashboard", "/dashboard"):
        r = client.get(path, headers=school)
        assert r.status_code == 200, path
        assert not _leaks(r.text), (path, _leaks(r.text))
    cases = client.get("/api/v1/disposals?state=", headers=school).json()["items"]
    by_record = {c["record_id"]: c for c in cases}
    assert by_record[key]["state"] == "held"
    assert by_record[key]["reason"] == "a hold covers the record"
    assert by_record[returned]["reason"] == "a hold that covered the record ended"


def test_the_council_still_sees_everything(estate: Estate, held: tuple[str, str],
                                           client: TestClient) -> None:
    """Officers, approvers and auditors see the hold's type, reason, author and lift reason
    (so the test above is not passing because there was nothing to see)."""
    key, returned = held
    for user in ("officer", "approver1", "auditor"):
        doc = client.get(f"/api/v1/records/{key}", headers=_as(estate, user))
        assert STILL in doc.text and PLACED in doc.text and LIFTED in doc.text, user
        assert doc.json()["holds"][0]["type"] == "complaint"
        assert OFFICER in {e["actor"] for e in doc.json()["history"]}
        cases = client.get("/api/v1/disposals?state=pending_review&limit=500",
                           headers=_as(estate, user)).json()["items"]
        assert any(LIFTED in (c["reason"] or "") for c in cases if c["record_id"] == returned)


def test_the_table_gives_hold_details_to_the_council_only() -> None:
    """``view_hold_details`` belongs to every role but the controller's."""
    assert {r for r, perms in ROLE_PERMISSIONS.items() if VIEW_HOLD_DETAILS in perms} == {
        "admin", "ig_officer", "approver", "auditor"}
