"""Review on real SQLite and PostgreSQL: approve with distinct approvers, defer, reject,
all-or-nothing batches and idempotent repeats (DESIGN.md sections 3.8 and 4)."""

from __future__ import annotations

import pytest
from conftest import TODAY
from int_support import (
    D,
    active_approvers,
    as_actor,
    audit_counts,
    cp_case,
    live_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
)

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.review import approve, defer, list_disposals, reject


@pytest.fixture
def queue(ctx, tmp_path):
    """Queued cases: two one-approver referrals, one two-approver child-protection case."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        referral("R-1", "2015-01-01"),
        referral("R-2", "2015-02-01"),
        cp_case("R-CP", "1980-01-01", opened_on="1975-01-01"),
        pupil("R-HELD", "2000-01-01"),
    ])
    evaluate(ctx, TODAY)
    place_hold(ctx, scope="record:R-HELD", hold_type="legal", reason="claim")
    return ctx


def _id(ctx, key):
    return live_case(ctx, key).id


def test_one_approver_case_is_approved(queue):
    """A case whose rule needs one approver is approved by one person, with an event."""
    (view,) = approve(queue, [_id(queue, "R-1")], reason="reviewed")
    assert (view.state, view.approved_by, view.approvals_required) == (
        "approved", ("officer.one",), 1)
    assert audit_counts(queue)["DisposalApproved"] == 1


def test_two_approvers_must_be_different_people(queue):
    """A two-approver case stays pending after one approval, is approved by a second,
    different person, and the same person approving twice is refused."""
    cid = _id(queue, "R-CP")
    (first,) = approve(queue, [cid], reason="first review")
    assert (first.state, first.approved_by) == ("pending_review", ("officer.one",))
    before = snapshot(queue)
    with pytest.raises(LifecycleError, match="already approved"):
        approve(queue, [cid], reason="again")
    assert snapshot(queue) == before
    (second,) = approve(as_actor(queue, "officer.two"), [cid], reason="second review")
    assert (second.state, second.approved_by) == ("approved", ("officer.one", "officer.two"))
    counts = audit_counts(queue)
    assert (counts["DisposalApprovalRecorded"], counts["DisposalApproved"]) == (1, 1)


def test_approve_of_held_case_refused(queue):
    """A held case cannot be approved."""
    before = snapshot(queue)
    with pytest.raises(LifecycleError, match="held"):
        approve(queue, [_id(queue, "R-HELD")], reason="reviewed")
    assert snapshot(queue) == before


@pytest.mark.parametrize("verb", ["approve", "defer", "reject"])
def test_batch_with_one_bad_id_changes_nothing(queue, verb):
    """A batch naming an unknown case, or one that cannot take the action, changes none."""
    good = [_id(queue, "R-1"), _id(queue, "R-2")]
    bad = {"approve": _id(queue, "R-HELD"), "defer": 9999, "reject": 9999}[verb]
    before = snapshot(queue)
    with pytest.raises(LifecycleError):
        if verb == "approve":
            approve(queue, [*good, bad], reason="batch")
        elif verb == "defer":
            defer(queue, [*good, bad], reason="batch", until=D(2027, 1, 1))
        else:
            reject(queue, [*good, bad], reason="batch")
    assert snapshot(queue) == before


def test_unknown_id_refused_by_approve(queue):
    """Approving an unknown case is refused, naming it; an empty list is refused."""
    with pytest.raises(LifecycleError, match="no disposal 424242"):
        approve(queue, [_id(queue, "R-1"), 424242], reason="x")
    with pytest.raises(LifecycleError, match="at least one"):
        approve(queue, [], reason="x")
    assert live_case(queue, "R-1").state == "pending_review"


@pytest.mark.parametrize("verb", ["approve", "defer", "reject"])
def test_reason_is_required(queue, verb):
    """Every review action needs a reason."""
    fn = {"approve": approve, "reject": reject,
          "defer": lambda c, i, reason: defer(c, i, reason=reason, until=D(2027, 1, 1))}[verb]
    with pytest.raises(LifecycleError, match="reason"):
        fn(queue, [_id(queue, "R-1")], reason=" ")


@pytest.mark.parametrize("until", [TODAY, D(2026, 11, 1)], ids=["today", "past"])
def test_defer_needs_a_future_date(queue, until):
    """Deferring to today or a past date is refused."""
    before = snapshot(queue)
    with pytest.raises(LifecycleError, match="must be after today"):
        defer(queue, [_id(queue, "R-1")], reason="later", until=until)
    assert snapshot(queue) == before


def test_defer_closes_case_and_sets_review_date(queue):
    """Deferring closes the case as deferred and records the date on the record."""
    cid = _id(queue, "R-1")
    (view,) = defer(queue, [cid], reason="case review pending", until=D(2027, 3, 1))
    assert (view.state, view.reason) == ("deferred", "case review pending")
    assert records_by_key(queue)["R-1"].deferred_until == D(2027, 3, 1)
    assert audit_counts(queue)["DisposalDeferred"] == 1


def test_reject_closes_case_and_remembers_due_date(queue):
    """Rejecting closes the case and remembers the due date it was rejected at."""
    cid = _id(queue, "R-2")
    (view,) = reject(queue, [cid], reason="needed for an appeal")
    assert view.state == "rejected"
    assert records_by_key(queue)["R-2"].rejected_due_on == D(2021, 2, 1)
    assert audit_counts(queue)["DisposalRejected"] == 1


@pytest.mark.parametrize("verb", ["approve", "defer", "reject"])
def test_repeating_an_action_is_idempotent(queue, verb):
    """Doing the same review action twice has the effect of doing it once: no change, no event."""
    cid = _id(queue, "R-1")

    def act():
        if verb == "approve":
            return approve(queue, [cid], reason="reviewed")
        if verb == "defer":
            return defer(queue, [cid], reason="later", until=D(2027, 1, 1))
        return reject(queue, [cid], reason="keep")

    first = act()
    before = snapshot(queue)
    again = act()
    assert snapshot(queue) == before
    assert [v.as_json() for v in again] == [v.as_json() for v in first]


def test_approved_twice_by_two_people_stays_approved(queue):
    """Once both approvers have approved, a repeat by either changes nothing."""
    cid = _id(queue, "R-CP")
    approve(queue, [cid], reason="one")
    approve(as_actor(queue, "officer.two"), [cid], reason="two")
    before = snapshot(queue)
    approve(queue, [cid], reason="one again")
    assert snapshot(queue) == before


@pytest.mark.parametrize(("first", "then"), [
    ("reject", "approve"), ("defer", "approve"), ("reject", "defer"), ("defer", "reject"),
])
def test_closed_case_cannot_be_acted_on(queue, first, then):
    """A rejected or deferred case is closed: a different action on it is refused."""
    cid = _id(queue, "R-1")
    if first == "reject":
        reject(queue, [cid], reason="keep")
    else:
        defer(queue, [cid], reason="later", until=D(2027, 1, 1))
    with pytest.raises(LifecycleError, match=r"is (rejected|deferred)"):
        if then == "approve":
            approve(queue, [cid], reason="x")
        elif then == "defer":
            defer(queue, [cid], reason="x", until=D(2027, 2, 1))
        else:
            reject(queue, [cid], reason="x")


@pytest.mark.parametrize("verb", ["reject", "defer"])
def test_held_case_may_be_rejected_or_deferred(queue, verb):
    """Keeping a record is always allowed: a held case may be rejected or deferred."""
    cid = _id(queue, "R-HELD")
    if verb == "reject":
        (view,) = reject(queue, [cid], reason="keep while the claim runs")
    else:
        (view,) = defer(queue, [cid], reason="look again later", until=D(2027, 6, 1))
    assert view.state == {"reject": "rejected", "defer": "deferred"}[verb]


def test_list_disposals_by_state_and_keys(queue):
    """Cases are listed in id order, filtered by state, with the documented keys."""
    approve(queue, [_id(queue, "R-1")], reason="ok")
    views = list_disposals(queue)
    assert [v.id for v in views] == sorted(v.id for v in views)
    assert {v.record_id for v in list_disposals(queue, state="approved")} == {"R-1"}
    assert {v.record_id for v in list_disposals(queue, state="held")} == {"R-HELD"}
    assert views[0].as_json().keys() == {
        "id", "record_id", "category", "controller", "state", "due_on", "action", "rule",
        "policy_version", "approvals_required", "approved_by", "reason", "updated_at",
        "not_found_in", "last_error", "attempts", "stage", "stage_group", "stages",
        "cooling_off_days", "cooling_until"}
    with pytest.raises(LifecycleError, match="unknown state"):
        list_disposals(queue, state="gone")


def test_approval_of_a_case_not_yet_due_is_refused(queue, tmp_path):
    """A case whose due date moved after today cannot be approved on a stale decision: the
    re-import withdraws it and there is nothing left to approve."""
    cid = _id(queue, "R-1")
    load_records(queue, tmp_path, [referral("R-1", "2024-01-01")])
    with pytest.raises(LifecycleError, match="withdrawn"):
        approve(queue, [cid], reason="ok")
    assert active_approvers(queue, cid) == []
