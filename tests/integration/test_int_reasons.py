"""Reasons that say nothing, on real SQLite and PostgreSQL: every lifecycle function that
takes a reason (or who and how, for a confirmed destruction, or a dispute) refuses one made of
invisible characters and changes nothing; so do the API and the web forms."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TODAY
from fastapi.testclient import TestClient
from int_support import D, cp_case, live_case, load_records, seed_controllers, snapshot
from web_support import Estate, app_client, seed, sign_in

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve, defer, reject
from retentiond.lifecycle.tasks import confirm_destruction
from retentiond.notify.ack import acknowledge
from retentiond.policy import PolicySet
from retentiond.web.sessions import create_token

#: A zero-width space, word joiner, byte-order mark, no-break spaces, the Hangul filler, bidi
#: marks, a lone combining accent, an ideographic space, a tag character: each prints nothing.
INVISIBLE = ["\u200b", "\u2060", "\ufeff", "\u00a0\u00a0", "\u3164", "\u200e\u200f",
             " \u0301 ", "\u3000", "\U000e0020"]


def _calls(ctx: Context, cid: int, hold_id: int) -> dict[str, Callable[[str], Any]]:
    """Every lifecycle call that takes free text, with the text as its one argument."""
    return {
        "approve": lambda t: approve(ctx, [cid], reason=t),
        "defer": lambda t: defer(ctx, [cid], reason=t, until=D(2099, 1, 1)),
        "reject": lambda t: reject(ctx, [cid], reason=t),
        "place hold": lambda t: place_hold(ctx, scope="record:R-CP", hold_type="legal",
                                           reason=t),
        "lift hold": lambda t: lift_hold(ctx, hold_id, reason=t),
        "destroyed by": lambda t: confirm_destruction(ctx, cid, destroyed_by=t,
                                                      destroyed_on=TODAY, method="shredded"),
        "method": lambda t: confirm_destruction(ctx, cid, destroyed_by="Contractor Ltd",
                                                destroyed_on=TODAY, method=t),
        "dispute": lambda t: acknowledge(ctx, "NO-SUCH", by="dpo", kind="disputed", comment=t),
        "acknowledged by": lambda t: acknowledge(ctx, "NO-SUCH", by=t),
        "token name": lambda t: create_token(dataclasses.replace(ctx, actor="nobody"), "nobody",
                                             name=t),
    }


def test_every_lifecycle_route_refuses_a_reason_that_shows_nothing(ctx, tmp_path):
    """Approve, defer, reject, place and lift a hold, confirm a destruction, dispute or
    acknowledge a certificate, name a token: each refuses each invisible string, saying a
    visible character is needed, and the registry is unchanged."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [cp_case("R-CP", "1980-01-01"), cp_case("R-H", "1980-01-01")])
    evaluate(ctx, TODAY)
    hold = place_hold(ctx, scope="record:R-H", hold_type="legal", reason="synthetic claim")
    calls = _calls(ctx, live_case(ctx, "R-CP").id, hold.id)
    before = snapshot(ctx)
    for text in INVISIBLE:
        for name, call in calls.items():
            with pytest.raises(LifecycleError, match="at least one visible character"):
                call(text)
                pytest.fail(f"{name} took {text!r}")
    assert snapshot(ctx) == before


def _lifecycle(estate: Estate) -> dict[str, list[tuple[Any, ...]]]:
    """The lifecycle's tables (signing in and using a token write sessions and events)."""
    return {k: v for k, v in snapshot(estate.ctx).items()
            if k in ("disposals", "approvals", "holds", "records")}


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=60)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    with app_client(estate, policy, clock, tmp_path) as c:
        yield c


def test_the_api_and_the_forms_refuse_a_reason_that_shows_nothing(client, estate):
    """The API answers 422 naming the reason field, the forms 400 with the field's error, for
    every invisible string, and nothing changes."""
    approver = {"Authorization": f"Bearer {estate.tokens['approver1']}"}
    officer = {"Authorization": f"Bearer {estate.tokens['officer']}"}
    hold = client.post("/api/v1/holds", headers=officer, json={
        "scope": "controller:DEMO-SCH-01", "type": "legal", "reason": "synthetic claim"}).json()
    before = _lifecycle(estate)
    for text in INVISIBLE:
        for path, headers, body in (
                ("/api/v1/disposals/approve", approver, {"ids": [1], "reason": text}),
                ("/api/v1/disposals/reject", officer, {"ids": [1], "reason": text}),
                ("/api/v1/disposals/defer", officer,
                 {"ids": [1], "reason": text, "until": "2099-01-01"}),
                ("/api/v1/holds", officer,
                 {"scope": "controller:DEMO-SCH-02", "type": "legal", "reason": text}),
                (f"/api/v1/holds/{hold['id']}/lift", officer, {"reason": text})):
            r = client.post(path, headers=headers, json=body)
            assert r.status_code == 422, (path, text, r.text)
            assert [e["loc"] for e in r.json()["detail"]] == [["body", "reason"]]
    csrf = sign_in(client, "officer")
    for text in INVISIBLE:
        r = client.post(f"/holds/{hold['id']}/lift", data={"reason": text, "csrf_token": csrf})
        assert r.status_code == 400 and "Enter the reason for lifting the hold" in r.text
        r = client.post("/holds", data={"scope_kind": "record", "scope_value": "X",
                                         "hold_type": "legal", "reason": text,
                                         "csrf_token": csrf})
        assert r.status_code == 400 and "Enter the reason for the hold" in r.text
        r = client.post("/queue/reject", data={"ids": ["1"], "reason": text, "csrf_token": csrf})
        assert r.status_code == 400 and "Enter a reason" in r.text
    assert _lifecycle(estate) == before
