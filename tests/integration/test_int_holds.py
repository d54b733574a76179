"""Holds on real SQLite and PostgreSQL: every scope, placing on queued cases, lifting, several
holds, expiry, refusals. Holds win over everything (DESIGN.md section 3, rule 6)."""

from __future__ import annotations

import pytest
from conftest import TODAY
from int_support import (
    D,
    active_approvers,
    as_actor,
    at,
    audit_counts,
    live_case,
    load_records,
    pupil,
    referral,
    seed_controllers,
    snapshot,
    states,
)

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, list_holds, place_hold
from retentiond.lifecycle.review import approve

#: Every record here is due on TODAY or earlier.
ALL = {"R-S1-A", "R-S1-B", "R-S2", "R-REF-1", "R-REF-2"}


@pytest.fixture
def estate(ctx, tmp_path):
    """Five due records: two of subject S-1 at SCH-01, one of S-2 at SCH-02, two referrals
    at LA-01."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        pupil("R-S1-A", "2000-01-01", subject="S-1"),
        pupil("R-S1-B", "2000-01-01", subject="S-1"),
        pupil("R-S2", "2000-05-05", subject="S-2", controller="SCH-02"),
        referral("R-REF-1", "2015-01-01"),
        referral("R-REF-2", "2016-01-01"),
    ])
    return ctx


SCOPES = [
    pytest.param("record:R-S2", {"R-S2"}, id="record"),
    pytest.param("subject:S-1", {"R-S1-A", "R-S1-B"}, id="subject"),
    pytest.param("category:safeguarding.referral", {"R-REF-1", "R-REF-2"}, id="category"),
    pytest.param("controller:SCH-02", {"R-S2"}, id="controller"),
    pytest.param("controller:LA-01", {"R-REF-1", "R-REF-2"}, id="controller-la"),
]


@pytest.mark.parametrize(("scope", "covered"), SCOPES)
def test_held_records_are_never_queued(estate, scope, covered):
    """A hold of any scope keeps exactly the records in its scope out of the queue."""
    view = place_hold(estate, scope=scope, hold_type="legal", reason="synthetic claim")
    assert view.records_covered == len(covered) and view.active
    evaluate(estate, TODAY)
    evaluate(estate, TODAY)
    assert set(states(estate)) == ALL - covered


@pytest.mark.parametrize(("scope", "covered"), SCOPES)
def test_hold_on_queued_cases_moves_them_to_held(estate, scope, covered):
    """A hold placed after queueing moves the covered live cases, and only them, to held."""
    evaluate(estate, TODAY)
    place_hold(estate, scope=scope, hold_type="subject_access", reason="SAR 2026/001")
    got = {k: s[-1] for k, s in states(estate).items()}
    assert got == {k: "held" if k in covered else "pending_review" for k in ALL}
    assert audit_counts(estate)["DisposalHeld"] == len(covered)


def test_hold_voids_approvals_and_lift_returns_to_review(estate):
    """A hold on an approved case voids its approvals; lifting returns it to pending_review,
    never straight to approved."""
    evaluate(estate, TODAY)
    case = live_case(estate, "R-REF-1")
    approve(estate, [case.id], reason="reviewed")
    assert live_case(estate, "R-REF-1").state == "approved"
    hold = place_hold(estate, scope="record:R-REF-1", hold_type="police", reason="police request")
    assert live_case(estate, "R-REF-1").state == "held"
    assert active_approvers(estate, case.id) == []
    lift_hold(estate, hold.id, reason="request withdrawn")
    after = live_case(estate, "R-REF-1")
    assert (after.id, after.state) == (case.id, "pending_review")
    assert active_approvers(estate, case.id) == []
    counts = audit_counts(estate)
    assert (counts["HoldPlaced"], counts["DisposalHeld"], counts["HoldLifted"],
            counts["DisposalReturnedToReview"]) == (1, 1, 1, 1)


def test_partial_approval_is_voided_by_a_hold(estate, tmp_path):
    """A case with one of two approvals loses it when held: review starts again after lifting."""
    load_records(estate, tmp_path, [{"record_id": "R-CP", "category": "child_protection.case",
                                     "controller": "LA-01", "opened_on": "1970-01-01",
                                     "closed_on": "1980-01-01"}])
    evaluate(estate, TODAY)
    case = live_case(estate, "R-CP")
    approve(estate, [case.id], reason="first look")
    hold = place_hold(estate, scope="record:R-CP", hold_type="complaint", reason="complaint")
    lift_hold(estate, hold.id, reason="complaint closed")
    approve(as_actor(estate, "officer.two"), [case.id], reason="second look")
    assert live_case(estate, "R-CP").state == "pending_review"
    assert active_approvers(estate, case.id) == ["officer.two"]


def test_second_hold_keeps_record_held_after_first_is_lifted(estate):
    """With two holds on a record, lifting one leaves it held; lifting both returns it."""
    evaluate(estate, TODAY)
    first = place_hold(estate, scope="record:R-S1-A", hold_type="legal", reason="claim")
    second = place_hold(estate, scope="subject:S-1", hold_type="subject_access", reason="SAR")
    lift_hold(estate, first.id, reason="claim settled")
    assert live_case(estate, "R-S1-A").state == "held"
    evaluate(estate, TODAY)
    assert states(estate)["R-S1-A"] == ["held"]
    lift_hold(estate, second.id, reason="SAR answered")
    assert live_case(estate, "R-S1-A").state == "pending_review"


def test_hold_expires_after_its_until_date(estate):
    """A hold applies through its --until date and is lifted by the first evaluation after."""
    evaluate(estate, TODAY)
    until = D(2026, 11, 30)
    hold = place_hold(estate, scope="record:R-S2", hold_type="inquiry", reason="inquiry",
                      until=until)
    assert evaluate(at(estate, until), until).holds_expired == 0
    assert live_case(estate, "R-S2").state == "held"
    day_after = D(2026, 12, 1)
    assert evaluate(at(estate, day_after), day_after).holds_expired == 1
    assert live_case(estate, "R-S2").state == "pending_review"
    (view,) = list_holds(at(estate, day_after), include_lifted=True)
    assert (view.id, view.active, view.lifted_by) == (hold.id, False, "retentiond")
    assert audit_counts(estate)["HoldExpired"] == 1


def test_record_held_until_a_date_is_queued_after_expiry(estate):
    """A record never queued because of a dated hold is queued once that hold has expired."""
    place_hold(estate, scope="record:R-S2", hold_type="other", reason="moratorium",
               until=D(2026, 11, 25))
    evaluate(estate, TODAY)
    assert "R-S2" not in states(estate)
    evaluate(at(estate, D(2026, 11, 26)), D(2026, 11, 26))
    assert states(estate)["R-S2"] == ["pending_review"]


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"scope": "record:R-NOPE"}, "no record", id="unknown-record"),
    pytest.param({"scope": "subject:S-NOPE"}, "no subject", id="unknown-subject"),
    pytest.param({"scope": "controller:SCH-99"}, "no controller", id="unknown-controller"),
    pytest.param({"scope": "category:nothing.here"}, "no category", id="unknown-category"),
    pytest.param({"scope": "box:12"}, "is not one of", id="unknown-kind"),
    pytest.param({"scope": "record:"}, "is not one of", id="empty-value"),
    pytest.param({"scope": "R-S2"}, "is not one of", id="no-kind"),
    pytest.param({"hold_type": "whim"}, "hold type", id="unknown-type"),
    pytest.param({"reason": "  "}, "reason", id="empty-reason"),
    pytest.param({"until": D(2026, 11, 21)}, "in the past", id="until-in-past"),
])
def test_bad_hold_is_refused_and_changes_nothing(estate, kwargs, message):
    """A hold with an unknown scope value, kind or type, no reason or a past end is refused;
    nothing is written."""
    evaluate(estate, TODAY)
    before = snapshot(estate)
    args = {"scope": "record:R-S2", "hold_type": "legal", "reason": "claim", **kwargs}
    with pytest.raises(LifecycleError, match=message):
        place_hold(estate, **args)
    assert snapshot(estate) == before


def test_lift_is_idempotent_and_unknown_hold_refused(estate):
    """Lifting a hold twice has the effect of once; lifting an unknown hold is refused."""
    hold = place_hold(estate, scope="record:R-S2", hold_type="legal", reason="claim")
    lift_hold(estate, hold.id, reason="settled")
    before = snapshot(estate)
    view = lift_hold(as_actor(estate, "officer.two"), hold.id, reason="again")
    assert (view.lifted_by, view.lift_reason) == ("officer.one", "settled")
    assert snapshot(estate) == before
    with pytest.raises(LifecycleError, match="no hold 999"):
        lift_hold(estate, 999, reason="x")
    with pytest.raises(LifecycleError, match="reason"):
        lift_hold(estate, hold.id, reason="")


def test_list_holds(estate):
    """Holds are listed newest first; lifted ones only when asked."""
    a = place_hold(estate, scope="subject:S-1", hold_type="legal", reason="claim")
    b = place_hold(estate, scope="category:safeguarding.referral", hold_type="inquiry",
                   reason="inquiry")
    lift_hold(estate, a.id, reason="settled")
    assert [(h.id, h.records_covered) for h in list_holds(estate)] == [(b.id, 2)]
    assert [h.id for h in list_holds(estate, include_lifted=True)] == [b.id, a.id]
    assert list_holds(estate)[0].as_json().keys() == {
        "id", "scope", "type", "reason", "placed_by", "placed_at", "until", "lifted_at",
        "lifted_by", "lift_reason", "active", "records_covered", "covers", "criteria"}


def test_hold_covers_records_imported_later(estate, tmp_path):
    """A subject hold also covers a record of that subject imported after it was placed."""
    place_hold(estate, scope="subject:S-1", hold_type="legal", reason="claim")
    load_records(estate, tmp_path, [pupil("R-S1-C", "2000-01-01", subject="S-1")])
    evaluate(estate, TODAY)
    assert "R-S1-C" not in states(estate)
