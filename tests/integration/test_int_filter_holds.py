"""Holds scoped by a saved filter, on real SQLite and PostgreSQL: placing one holds exactly
the live cases that match, evaluate keeps matching records out of the queue (and only them),
approve and execute re-check it, lifting returns the cases to review, and the hold keeps its
own copy of the criteria whatever happens to the filter later."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import TODAY
from execution_support import connectors, holding_database, holding_upns, make_holding
from execution_support import seed as seed_execution
from int_support import (
    D,
    active_approvers,
    at,
    audit_counts,
    live_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
    states,
)
from sqlalchemy import select, text, update

from retentiond.audit.chain import verify
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.explain import explain
from retentiond.lifecycle.filters import delete_filter, get_filter, list_filters, save_filter
from retentiond.lifecycle.holds import QUEUE_LOCK_KEY, lift_hold, list_holds, place_hold
from retentiond.lifecycle.review import approve
from retentiond.registry.models import AuditEvent, Disposal, Hold, Record, SavedFilter

ALL = {"R-S1-A", "R-S1-B", "R-S2", "R-REF-1", "R-REF-2"}


@pytest.fixture
def estate(ctx, tmp_path):
    """Five due records: two pupils at SCH-01, one at SCH-02, two referrals at LA-01 (the
    first due a year before the second)."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        pupil("R-S1-A", "2000-01-01", subject="S-1"),
        pupil("R-S1-B", "2000-01-01", subject="S-1"),
        pupil("R-S2", "2000-05-05", subject="S-2", controller="SCH-02"),
        referral("R-REF-1", "2015-01-01"),
        referral("R-REF-2", "2016-01-01"),
    ])
    return ctx


def _due(ctx, key):
    return records_by_key(ctx)[key].due_on


def test_saved_filter_round_trip_and_audit(estate):
    """Saving keeps the criteria, owner and time; names are unique; both saving and deleting
    are audited with the criteria."""
    saved = save_filter(estate, name="LA referrals", criteria={
        "controller": "LA-01", "category": "safeguarding.referral", "state": "pending_review"})
    assert (saved.owner, saved.created_at) == (estate.actor, estate.clock.now())
    assert get_filter(estate, "LA referrals") == get_filter(estate, str(saved.id)) == saved
    assert saved.description == ("records of controller LA-01 in category "
                                 "safeguarding.referral (in the queue: cases pending review)")
    with pytest.raises(LifecycleError, match=r"^name: a saved filter called 'LA referrals'"):
        save_filter(estate, name="LA referrals", criteria={"controller": "SCH-01"})
    delete_filter(estate, "LA referrals")
    assert list_filters(estate) == []
    counts = audit_counts(estate)
    assert (counts["FilterSaved"], counts["FilterDeleted"]) == (1, 1)
    with estate.sessions() as session:
        assert verify(session).ok


@pytest.mark.parametrize(("criteria", "message"), [
    ({"controller": "LA-99"}, "^controller: no controller 'LA-99' is known"),
    ({"category": "no.such"}, "^category: 'no.such' is not a category"),
    ({"rule": "NO-RULE"}, "^rule: 'NO-RULE' is not a rule"),
    ({"due_to": "2030-13-01"}, "^due_to: '2030-13-01' is not a date"),
    ({}, "^criteria: choose at least one"),
])
def test_bad_filter_is_refused_and_changes_nothing(estate, criteria, message):
    before = snapshot(estate)
    with pytest.raises(LifecycleError, match=message):
        save_filter(estate, name="bad", criteria=criteria)
    assert snapshot(estate) == before


def test_filter_hold_keeps_exactly_the_matching_records_out_of_the_queue(estate):
    """Evaluate skips records the filter hold's criteria match, and queues the rest: a
    referral due after the filter's due_to, and every other controller's record."""
    first = _due(estate, "R-REF-1")
    assert first < _due(estate, "R-REF-2")
    save_filter(estate, name="early LA referrals", criteria={
        "controller": "LA-01", "category": "safeguarding.referral",
        "due_to": first.isoformat(), "state": "pending_review"})
    view = place_hold(estate, scope="filter:early LA referrals", hold_type="legal",
                      reason="synthetic claim")
    assert (view.scope, view.records_covered, view.active) == (
        "filter:early LA referrals", 1, True)
    assert view.criteria == {"controller": "LA-01", "category": "safeguarding.referral",
                             "due_to": first.isoformat()}  # the state is not kept
    assert view.covers.startswith("records of controller LA-01 in category "
                                  "safeguarding.referral due on or before ")
    evaluate(estate, TODAY)
    evaluate(estate, TODAY)
    assert set(states(estate)) == ALL - {"R-REF-1"}
    assert explain(estate, "R-REF-1", as_of=TODAY)["state"] == "held"


def test_rule_action_and_due_from_criteria(estate):
    """Rule, action and a due date from: the record's current decision must match all."""
    second = _due(estate, "R-REF-2")
    save_filter(estate, name="late referrals", criteria={
        "rule": "isa.safeguarding.referral", "action": "delete", "due_from": second.isoformat()})
    save_filter(estate, name="returns", criteria={"action": "return"})
    late = place_hold(estate, scope="filter:late referrals", hold_type="legal", reason="claim")
    returns = place_hold(estate, scope="filter:returns", hold_type="other", reason="audit")
    assert (late.records_covered, returns.records_covered) == (1, 0)
    evaluate(estate, TODAY)
    assert set(states(estate)) == ALL - {"R-REF-2"}


def test_placing_a_filter_hold_moves_matching_live_cases_and_lifting_returns_them(estate):
    """Like every scope: the matching live cases go to held (approvals voided), the others
    stay; lifting sends them back to pending_review, never to approved."""
    evaluate(estate, TODAY)
    ref1 = live_case(estate, "R-REF-1")
    approve(estate, [ref1.id], reason="reviewed")
    assert live_case(estate, "R-REF-1").state == "approved"
    saved = save_filter(estate, name="LA", criteria={"controller": "LA-01"})
    hold = place_hold(estate, scope=f"filter:{saved.id}", hold_type="inquiry", reason="inquiry")
    assert hold.scope == "filter:LA"  # placed by id, recorded by name
    got = {k: s[-1] for k, s in states(estate).items()}
    assert got == {k: "held" if k.startswith("R-REF") else "pending_review" for k in ALL}
    assert active_approvers(estate, ref1.id) == []
    assert get_filter(estate, "LA").holds == [hold.id]
    lift_hold(estate, hold.id, reason="inquiry closed")
    got = {k: s[-1] for k, s in states(estate).items()}
    assert got == dict.fromkeys(ALL, "pending_review")
    counts = audit_counts(estate)
    assert (counts["DisposalHeld"], counts["DisposalReturnedToReview"]) == (2, 2)
    with estate.sessions() as session:
        placed, lifted = (session.scalar(select(AuditEvent.data).where(AuditEvent.kind == k))
                          for k in ("HoldPlaced", "HoldLifted"))
        assert verify(session).ok
    assert placed == {"scope": "filter:LA", "type": "inquiry", "until": None,
                      "filter_id": saved.id, "criteria": {"controller": "LA-01"}}
    assert lifted == {"scope": "filter:LA", "filter_id": saved.id,
                      "criteria": {"controller": "LA-01"}}
    assert get_filter(estate, "LA").holds == []


def test_another_hold_keeps_the_case_held_when_the_filter_hold_is_lifted(estate):
    evaluate(estate, TODAY)
    save_filter(estate, name="referrals", criteria={"category": "safeguarding.referral"})
    by_filter = place_hold(estate, scope="filter:referrals", hold_type="legal", reason="claim")
    place_hold(estate, scope="record:R-REF-2", hold_type="police", reason="police request")
    lift_hold(estate, by_filter.id, reason="claim settled")
    assert (live_case(estate, "R-REF-1").state, live_case(estate, "R-REF-2").state) == (
        "pending_review", "held")


def test_deleting_or_changing_the_filter_does_not_change_the_hold(estate, tmp_path):
    """The hold's scope is evidence: it keeps the criteria it was placed with, whatever is
    done to the filter; it covers matching records imported later too."""
    saved = save_filter(estate, name="pupils", criteria={"category": "education.pupil_record",
                                                         "controller": "SCH-01"})
    hold = place_hold(estate, scope="filter:pupils", hold_type="subject_access", reason="SAR")
    with estate.sessions.begin() as session:  # someone edits the stored filter
        session.execute(update(SavedFilter).where(SavedFilter.id == saved.id)
                        .values(criteria={"controller": "SCH-02"}))
    gone = delete_filter(estate, "pupils")
    assert gone.holds == [hold.id]
    save_filter(estate, name="pupils", criteria={"controller": "LA-01"})  # name reused
    load_records(estate, tmp_path, [pupil("R-S1-C", "2000-01-01", subject="S-1"),
                                    pupil("R-S2-B", "2000-01-01", controller="SCH-02")])
    evaluate(estate, TODAY)
    assert set(states(estate)) == {"R-S2", "R-REF-1", "R-REF-2", "R-S2-B"}
    (view,) = list_holds(estate)
    assert (view.criteria, view.records_covered) == (
        {"category": "education.pupil_record", "controller": "SCH-01"}, 3)
    with estate.sessions() as session:
        deleted = session.scalar(select(AuditEvent.data).where(AuditEvent.kind == "FilterDeleted"))
    assert deleted["active_holds_keep_their_copy"] == [hold.id]
    assert deleted["criteria"] == {"controller": "SCH-02"}


def test_a_filter_hold_expires_like_any_other(estate):
    evaluate(estate, TODAY)
    save_filter(estate, name="SCH-02", criteria={"controller": "SCH-02"})
    until = D(2026, 11, 30)
    place_hold(estate, scope="filter:SCH-02", hold_type="inquiry", reason="inquiry", until=until)
    assert live_case(estate, "R-S2").state == "held"
    day_after = D(2026, 12, 1)
    assert evaluate(at(estate, day_after), day_after).holds_expired == 1
    assert live_case(estate, "R-S2").state == "pending_review"
    with estate.sessions() as session:
        expired = session.scalar(select(AuditEvent.data).where(AuditEvent.kind == "HoldExpired"))
    assert expired["criteria"] == {"controller": "SCH-02"}


@pytest.mark.parametrize(("scope", "message"), [
    ("filter:nothing-by-this-name", "^no saved filter 'nothing-by-this-name'"),
    ("filter:999999", "^no saved filter '999999'"),
    ("filter:queue view", "^saved filter 'queue view' has no criterion about records"),
])
def test_bad_filter_hold_is_refused_and_changes_nothing(estate, scope, message):
    evaluate(estate, TODAY)
    save_filter(estate, name="queue view", criteria={"state": "held"})
    before = snapshot(estate)
    with pytest.raises(LifecycleError, match=message):
        place_hold(estate, scope=scope, hold_type="legal", reason="claim")
    assert snapshot(estate) == before


def _hold_behind_the_back(ctx, criteria):
    """A filter hold as a racing transaction would leave it: the cases not yet moved."""
    with ctx.sessions.begin() as session:
        session.add(Hold(scope_kind="filter", scope_value="raced", hold_type="legal",
                         reason="raced", placed_by="test", placed_at=ctx.clock.now(),
                         criteria=criteria))


def test_approve_rechecks_filter_holds_and_does_not_over_cover(estate):
    evaluate(estate, TODAY)
    ref1, ref2 = live_case(estate, "R-REF-1"), live_case(estate, "R-REF-2")
    _hold_behind_the_back(estate, {"controller": "LA-01",
                                   "due_to": _due(estate, "R-REF-1").isoformat()})
    with pytest.raises(LifecycleError, match=f"disposal {ref1.id}: the record is under a hold"):
        approve(estate, [ref1.id], reason="reviewed")
    approve(estate, [ref2.id], reason="reviewed")
    assert live_case(estate, "R-REF-2").state == "approved"


@pytest.fixture
def holding_url(database_url, tmp_path):
    yield from holding_database(database_url, tmp_path)


def test_execute_rechecks_filter_holds(ctx, tmp_path, holding_url):
    """An approved case a filter hold reached behind the executor's back is held at claim;
    one outside the criteria is executed."""
    make_holding(holding_url, ["U1", "U2"])
    seed_execution(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": "2000-01-01"},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": "2000-01-01",
         "controller": "SCH-02"},
    ])
    evaluate(ctx, TODAY)
    with ctx.sessions() as session:
        ids = list(session.scalars(select(Disposal.id).order_by(Disposal.id)))
    approve(ctx, ids, reason="retention period over; checked")
    _hold_behind_the_back(ctx, {"controller": "SCH-01", "category": "education.pupil_record"})
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="test", batch_size=3, lease_s=60)
    registry.close()
    assert (result.held, result.executed) == (1, 1)
    assert holding_upns(holding_url)[0] == {"U1"}
    with ctx.sessions() as session:
        got = {key: state for key, state in session.execute(
            select(Record.record_key, Disposal.state)
            .join(Disposal, Disposal.record_id == Record.id))}
    assert got == {"R1": "held", "R2": "executed"}


def test_hold_placement_waits_for_a_running_evaluation(estate, database_url):
    """A hold placed while an evaluation's queueing transaction runs waits for it, then holds
    the cases it queued (none is left pending_review under a hold): on PostgreSQL through the
    evaluation's advisory lock, on SQLite because there is one writer and the hold's
    transaction starts at its first write."""
    save_filter(estate, name="LA", criteria={"controller": "LA-01"})
    done = threading.Event()
    errors: list[BaseException] = []

    def place() -> None:
        try:
            place_hold(estate, scope="filter:LA", hold_type="legal", reason="claim")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    with estate.sessions.begin() as session:  # an evaluation, stopped mid-transaction
        if database_url.startswith("postgresql"):
            session.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"),
                            {"a": QUEUE_LOCK_KEY[0], "b": QUEUE_LOCK_KEY[1]})
        else:  # evaluation's first write (its run row) takes SQLite's write lock
            session.execute(update(Record).where(Record.id == -1).values(flags=""))
        record_id = session.scalar(select(Record.id).where(Record.record_key == "R-REF-1"))
        record = session.get_one(Record, record_id)
        worker = threading.Thread(target=place)
        worker.start()
        time.sleep(1.0)
        assert not done.is_set(), "the hold did not wait for the evaluation"
        session.add(Disposal(record_id=record_id, state="pending_review", due_on=record.due_on,
                             action=record.due_action, rule_id=record.due_rule,
                             policy_version=record.policy_version, approvals_required=1,
                             attempts=0, created_at=estate.clock.now(),
                             updated_at=estate.clock.now()))
    worker.join(30)
    assert done.is_set() and not errors, errors
    assert live_case(estate, "R-REF-1").state == "held"
