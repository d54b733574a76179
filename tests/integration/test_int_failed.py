"""Failed disposals, on both backends: retry after the cause is fixed (back to approved,
checked again at claim), or send back to review (approvals void); refused from any other
state and while a hold covers the record; audited; idempotent."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from execution_support import (
    DUE_DOB,
    connectors,
    events,
    holding_database,
    holding_upns,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from sqlalchemy import select

from retentiond.connectors import ConnectorRegistry
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.failed import retry, return_to_review
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve, list_disposals
from retentiond.registry.models import Approval, AuditEvent, Disposal

OWNER = "test-worker"
NO_CONNECTORS = ConnectorRegistry({}, {})


@pytest.fixture
def holding_url(database_url, tmp_path):
    yield from holding_database(database_url, tmp_path)


def _fail(ctx, tmp_path, keys=("R1", "R2")):
    """Cases of ``keys``, approved, then failed: no connector serves their system yet."""
    seed(ctx, tmp_path, [{"record_id": k, "system": "mis", "locator": f"U{k[1:]}",
                          "date_of_birth": DUE_DOB} for k in keys])
    cases = queue_and_approve(ctx)
    result = execute_due(ctx, NO_CONNECTORS, owner=OWNER, batch_size=10, lease_s=60)
    assert result.failed == len(keys)
    return {k: cases[k] for k in keys}


def test_failed_case_shows_its_reason_and_retry_then_executes(ctx, tmp_path, holding_url):
    """The reason is on the case; once a connector is configured, retry returns the case
    to approved with its approvals, and the next pass deletes the data and verifies it."""
    make_holding(holding_url, ["U1", "U2"])
    cases = _fail(ctx, tmp_path)
    [view] = [v for v in list_disposals(ctx, state="failed") if v.id == cases["R1"]]
    assert view.last_error == "no connector is configured for system 'mis'"
    assert view.as_json()["last_error"] == view.last_error
    officer = replace(ctx, actor="officer")
    [after] = retry(officer, [cases["R1"]], reason="connector for the MIS configured")
    assert after.state == "approved" and after.last_error is None and after.attempts == 0
    assert after.approved_by == ("officer.one",)  # the approval it had still counts
    result = execute_due(ctx, connectors(tmp_path, holding_url), owner=OWNER, batch_size=10,
                         lease_s=60)
    assert result.executed == 1
    assert states(ctx) == {"R1": "executed", "R2": "failed"}
    assert "U1" not in holding_upns(holding_url)[0]
    kinds = events(ctx, cases["R1"])
    assert kinds.index("DisposalFailed") < kinds.index("DisposalRetried") < kinds.index(
        "DisposalExecuted")
    with ctx.sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.kind == "DisposalRetried")).one()
    assert event.actor == "officer" and event.reason == "connector for the MIS configured"
    assert event.data["previous_error"] == "no connector is configured for system 'mis'"


def test_return_to_review_voids_approvals(ctx, tmp_path):
    """Sent back to review, a failed case is pending review and needs approving afresh."""
    cases = _fail(ctx, tmp_path)
    [after] = return_to_review(replace(ctx, actor="officer"), [cases["R2"]],
                               reason="the locator is wrong; checking with the school")
    assert after.state == "pending_review" and after.approved_by == ()
    with ctx.sessions() as s:
        live = s.scalars(select(Approval).where(Approval.disposal_id == cases["R2"],
                                                Approval.voided_at.is_(None))).all()
    assert live == []
    assert events(ctx, cases["R2"])[-1] == "DisposalReturnedToReview"
    [again] = approve(replace(ctx, actor="approver9"), [cases["R2"]], reason="locator fixed")
    assert again.state == "approved"


@pytest.mark.parametrize("action", [retry, return_to_review])
def test_only_failed_cases_move_and_none_move_if_one_is_refused(ctx, tmp_path, action):
    """A case that is not failed is refused by name, and the failed case named with it is
    left failed (one transaction)."""
    cases = _fail(ctx, tmp_path, keys=("R1",))
    seed(ctx, tmp_path, [{"record_id": "R9", "system": "mis", "locator": "U9",
                          "date_of_birth": DUE_DOB}])
    queue_and_approve(ctx, [])
    pending = {v.record_id: v.id for v in list_disposals(ctx, state="pending_review")}["R9"]
    with pytest.raises(LifecycleError, match=f"case {pending} is pending review: only a failed"):
        action(ctx, [cases["R1"], pending], reason="fixed")
    assert states(ctx)["R1"] == "failed"
    with pytest.raises(LifecycleError, match="a reason is required"):
        action(ctx, [cases["R1"]], reason=" \t")
    with pytest.raises(LifecycleError, match="no disposal 999999"):
        action(ctx, [999999], reason="fixed")


@pytest.mark.parametrize("action", [retry, return_to_review])
def test_twice_is_once(ctx, tmp_path, action):
    """Doing it twice (a form sent twice) writes one event and changes nothing more."""
    cases = _fail(ctx, tmp_path, keys=("R1",))
    first = action(ctx, [cases["R1"]], reason="fixed")
    second = action(ctx, [cases["R1"]], reason="fixed")
    assert first[0].state == second[0].state
    kinds = events(ctx, cases["R1"])
    assert kinds.count("DisposalRetried") + kinds.count("DisposalReturnedToReview") == 1


def test_retry_is_refused_under_a_hold_and_a_hold_placed_after_retry_wins(ctx, tmp_path,
                                                                           holding_url):
    """Holds win: retry is refused while a hold covers the record; a hold placed after the
    retry holds the case (the data stays)."""
    make_holding(holding_url, ["U1", "U2"])
    cases = _fail(ctx, tmp_path)
    hold = place_hold(ctx, scope="record:R1", hold_type="legal", reason="litigation L-1")
    with pytest.raises(LifecycleError, match=f"case {cases['R1']}: the record is under a hold"):
        retry(ctx, [cases["R1"]], reason="fixed")
    lift_hold(ctx, hold.id, reason="settled")
    retry(ctx, [cases["R1"], cases["R2"]], reason="fixed")
    place_hold(ctx, scope="record:R2", hold_type="subject_access", reason="SAR 1")
    result = execute_due(ctx, connectors(tmp_path, holding_url), owner=OWNER, batch_size=10,
                         lease_s=60)
    assert result.executed == 1
    assert states(ctx) == {"R1": "executed", "R2": "held"}
    assert "U2" in holding_upns(holding_url)[0]


def test_retry_racing_a_hold_never_executes_held_data(ctx, tmp_path, holding_url):
    """Retry and a hold placed at the same moment, many times: whichever commits first, the
    held record's data is never deleted."""
    make_holding(holding_url, [f"U{i}" for i in range(1, 9)])
    keys = tuple(f"R{i}" for i in range(1, 9))
    cases = _fail(ctx, tmp_path, keys=keys)
    registry = connectors(tmp_path, holding_url)
    for key in keys:
        barrier = threading.Barrier(2)
        errors: list[Exception] = []

        def do_retry(key: str = key, barrier: threading.Barrier = barrier,
                     errors: list[Exception] = errors) -> None:
            barrier.wait()
            try:
                retry(replace(ctx, actor="officer"), [cases[key]], reason="fixed")
            except LifecycleError as exc:
                errors.append(exc)

        def do_hold(key: str = key, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            place_hold(ctx, scope=f"record:{key}", hold_type="legal", reason="race")

        threads = [threading.Thread(target=do_retry), threading.Thread(target=do_hold)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        execute_due(ctx, registry, owner=OWNER, batch_size=10, lease_s=60)
        with ctx.sessions() as s:
            state = s.get_one(Disposal, cases[key]).state
        assert state in ("held", "failed"), (key, state, errors)
        assert f"U{key[1:]}" in holding_upns(holding_url)[0]
