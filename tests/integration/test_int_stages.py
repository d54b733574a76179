"""Ordered review stages, scoped reviewers, exceptions, comments and cooling-off on real
SQLite and PostgreSQL (issue 14, items 1-4; the semantics are in ``lifecycle/review.py``).

Pupil records here pass through ``service`` (group service-managers), ``ig`` (group ig) and,
for records flagged ``sensitive``, ``dpo``; the managers are scoped to their own school.
"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TODAY
from int_support import (
    active_approvers,
    as_actor,
    at,
    audit_counts,
    disposals_of,
    live_case,
    load_records,
    pupil,
    referral,
    seed_controllers,
    snapshot,
)
from sod_support import only_refusals, together
from sqlalchemy import select
from stages_support import seed_reviewers, staged_policy, with_policy

from retentiond.audit import verify
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.cooling import end_cooling
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import (
    approve,
    cancel_cooling,
    comment,
    count_disposals,
    list_disposals,
    raise_exception,
    reject,
    resume,
)
from retentiond.lifecycle.scopes import scope_clause
from retentiond.registry import models as m


def _staged(ctx, tmp_path, cooling_off_days=0):
    ctx = with_policy(ctx, staged_policy(tmp_path / "pack", cooling_off_days=cooling_off_days))
    seed_controllers(ctx, tmp_path)
    seed_reviewers(ctx)
    load_records(ctx, tmp_path, [
        pupil("R-P-1", "2000-01-01", controller="SCH-01"),
        pupil("R-P-2", "2000-02-01", controller="SCH-01", flags="sensitive"),
        pupil("R-P-3", "2000-03-01", controller="SCH-02"),
        referral("R-REF", "2015-01-01"),
    ])
    evaluate(ctx, TODAY)
    return ctx


@pytest.fixture
def staged(ctx, tmp_path):
    return _staged(ctx, tmp_path)


@pytest.fixture
def cooling(ctx, tmp_path):
    return _staged(ctx, tmp_path, cooling_off_days=7)


def _verified(ctx):
    with ctx.sessions() as session:
        return verify(session).ok


def _stage(ctx, key):
    case = live_case(ctx, key)
    return case.state, case.stage, case.stage_group


def test_queueing_writes_each_case_its_stages(staged):
    """Stages whose ``when`` fails are left out; a count rule's case has none."""
    views = {v.record_id: v for v in list_disposals(staged)}
    assert [s.group for s in views["R-P-1"].stages] == ["service-managers", "ig"]
    assert [s.group for s in views["R-P-2"].stages] == ["service-managers", "ig", "dpo"]
    assert views["R-P-1"].stage == 0
    assert views["R-P-1"].stage_words() == "Stage 1 of 2: service (group service-managers)"
    assert views["R-REF"].stage is None and views["R-REF"].stages == ()
    assert _stage(staged, "R-P-1") == ("pending_review", 0, "service-managers")
    assert _stage(staged, "R-REF") == ("pending_review", None, None)


def test_stages_complete_in_order_by_different_people(staged):
    case = live_case(staged, "R-P-1").id
    approve(as_actor(staged, "manager.sch01"), [case], reason="checked at school")
    assert _stage(staged, "R-P-1") == ("pending_review", 1, "ig")
    (view,) = approve(as_actor(staged, "officer.ig"), [case], reason="IG agrees")
    assert view.state == "approved"
    with staged.sessions() as session:
        stages = session.execute(select(m.Approval.approver, m.Approval.stage)
                                 .where(m.Approval.disposal_id == case)
                                 .order_by(m.Approval.id)).all()
    assert stages == [("manager.sch01", 0), ("officer.ig", 1)]
    assert audit_counts(staged)["DisposalApprovalRecorded"] == 1
    assert _verified(staged)


def test_a_stage_is_refused_to_someone_outside_its_group(staged):
    """Approving stage 2 before stage 1: the IG officer is not a service manager."""
    case = live_case(staged, "R-P-1").id
    before = snapshot(staged)
    with pytest.raises(LifecycleError, match=r"waits for stage 1 of 2 \(service\).*group "
                                             r"service-managers: you are not in that group"):
        approve(as_actor(staged, "officer.ig"), [case], reason="jumping ahead")
    assert snapshot(staged) == before


def test_one_person_in_two_groups_cannot_approve_two_stages(staged):
    case = live_case(staged, "R-P-1").id
    both = as_actor(staged, "officer.both")
    approve(both, [case], reason="as a service manager")
    with pytest.raises(LifecycleError, match="already approved it at an earlier stage"):
        approve(both, [case], reason="and now as IG")
    assert _stage(staged, "R-P-1") == ("pending_review", 1, "ig")
    assert active_approvers(staged, case) == ["officer.both"]


def test_one_person_in_two_groups_from_two_sessions_at_once(staged):
    """The same person approving stage 1 twice at once: one approval, the case at stage 2."""
    case = live_case(staged, "R-P-1").id
    both = as_actor(staged, "officer.both")
    for _ in range(3):
        outcomes = together(lambda: approve(both, [case], reason="one"),
                            lambda: approve(both, [case], reason="two"))
        only_refusals(outcomes)
    assert active_approvers(staged, case) == ["officer.both"]
    assert _stage(staged, "R-P-1") == ("pending_review", 1, "ig")


def test_sensitive_record_needs_the_dpo_last(staged):
    case = live_case(staged, "R-P-2").id
    approve(as_actor(staged, "manager.sch01"), [case], reason="ok")
    approve(as_actor(staged, "officer.ig"), [case], reason="ok")
    assert _stage(staged, "R-P-2") == ("pending_review", 2, "dpo")
    with pytest.raises(LifecycleError, match="group dpo"):
        approve(as_actor(staged, "officer.ig2"), [case], reason="ok")
    (view,) = approve(as_actor(staged, "officer.dpo"), [case], reason="ok")
    assert view.state == "approved" and len(view.approved_by) == 3


def test_out_of_scope_case_is_refused_and_unseen(staged):
    other_school = live_case(staged, "R-P-3").id
    before = snapshot(staged)
    with pytest.raises(LifecycleError, match=f"no disposal {other_school} in your review scope"):
        approve(as_actor(staged, "manager.sch01"), [other_school], reason="not mine")
    with pytest.raises(LifecycleError, match="in your review scope"):
        raise_exception(as_actor(staged, "manager.sch01"), [other_school], reason="not mine")
    with pytest.raises(LifecycleError, match="in your review scope"):
        comment(as_actor(staged, "manager.sch01"), other_school, text="not mine")
    assert snapshot(staged) == before
    seen = {v.record_id for v in list_disposals(as_actor(staged, "manager.sch01"))}
    assert seen == {"R-P-1", "R-P-2"}
    assert count_disposals(as_actor(staged, "manager.sch01")) == 2
    assert count_disposals(as_actor(staged, "officer.ig")) == 4


def test_scope_union_of_user_and_groups(staged):
    """Rows union: the IG group scoped to referrals and a user row for SCH-02 give both; a
    group with no rows leaves its members as they are."""
    from retentiond.lifecycle.groups import set_scope

    officer = as_actor(staged, "officer.ig")
    with staged.sessions() as session:
        assert scope_clause(session, "officer.ig") is None
    set_scope(staged, "group", "ig", controllers=[], categories=["safeguarding.referral"])
    assert {v.record_id for v in list_disposals(officer)} == {"R-REF"}
    set_scope(staged, "user", "officer.ig", controllers=["SCH-02"], categories=[])
    assert {v.record_id for v in list_disposals(officer)} == {"R-REF", "R-P-3"}
    set_scope(staged, "group", "ig", controllers=[], categories=[], clear=True)
    assert {v.record_id for v in list_disposals(officer)} == {"R-P-3"}


def test_bad_scope_input_names_the_field(staged):
    from retentiond.lifecycle.groups import add_group, add_member, set_scope

    with pytest.raises(LifecycleError, match="--controller: there is no controller 'SCH-99'"):
        set_scope(staged, "group", "ig", controllers=["SCH-99"], categories=[])
    with pytest.raises(LifecycleError, match=r"--category: 'no\.such'"):
        set_scope(staged, "group", "ig", controllers=[], categories=["no.such"])
    with pytest.raises(LifecycleError, match=r"group: .*U\+200B"):
        add_group(staged, "ig\u200b2")
    with pytest.raises(LifecycleError, match="already exists"):
        add_group(staged, "IG")
    with pytest.raises(LifecycleError, match="user: there is no user"):
        add_member(staged, "ig", "nobody.here")


def test_exception_goes_back_to_the_ig_officer(staged):
    case = live_case(staged, "R-P-1").id
    approve(as_actor(staged, "manager.sch01"), [case], reason="ok")
    (view,) = raise_exception(as_actor(staged, "officer.ig"), [case],
                              reason="the category looks wrong")
    assert view.state == "exception"
    assert active_approvers(staged, case) == []
    assert _stage(staged, "R-P-1") == ("exception", 0, "service-managers")
    with pytest.raises(LifecycleError, match="only a case pending review can be approved"):
        approve(as_actor(staged, "officer.ig"), [case], reason="ok")
    # Raising it twice is one exception.
    raise_exception(as_actor(staged, "officer.ig"), [case], reason="again")
    assert audit_counts(staged)["DisposalExceptionRaised"] == 1
    (view,) = resume(as_actor(staged, "officer.ig"), [case], reason="checked: category right")
    assert view.state == "pending_review" and view.stage == 0
    resume(as_actor(staged, "officer.ig"), [case], reason="sent twice")
    assert audit_counts(staged)["DisposalResumed"] == 1


def test_exception_resolved_by_keeping_the_record(staged):
    case = live_case(staged, "R-P-3").id
    raise_exception(as_actor(staged, "manager.sch02"), [case], reason="still needed")
    (view,) = reject(as_actor(staged, "officer.ig"), [case], reason="keep it")
    assert view.state == "rejected"


def test_exception_reason_with_only_invisible_characters_is_refused(staged):
    case = live_case(staged, "R-P-1").id
    before = snapshot(staged)
    with pytest.raises(LifecycleError, match="a reason is required"):
        raise_exception(as_actor(staged, "officer.ig"), [case], reason="\u200b\u2060 \u00ad")
    with pytest.raises(LifecycleError, match="a comment needs some words"):
        comment(as_actor(staged, "officer.ig"), case, text="\u200b")
    assert snapshot(staged) == before


def test_comment_changes_nothing_but_the_history(staged):
    case = live_case(staged, "R-P-1").id
    before = _stage(staged, "R-P-1")
    view = comment(as_actor(staged, "manager.sch01"), case, text="parent asked about it")
    assert view.state == "pending_review"
    assert _stage(staged, "R-P-1") == before
    with staged.sessions() as session:
        event = session.scalars(select(m.AuditEvent).where(
            m.AuditEvent.kind == "DisposalCommented")).one()
    assert (event.actor, event.entity_id, event.reason) == (
        "manager.sch01", str(case), "parent asked about it")


def test_count_rules_work_as_before(staged):
    case = live_case(staged, "R-REF").id
    (view,) = approve(as_actor(staged, "officer.ig"), [case], reason="ok")
    assert view.state == "approved" and view.stage is None


# --- cooling-off ---------------------------------------------------------------------------

def _approve_all(ctx, key):
    case = live_case(ctx, key).id
    approve(as_actor(ctx, "manager.sch01"), [case], reason="ok")
    approve(as_actor(ctx, "officer.ig"), [case], reason="ok")
    return case


def test_cooling_off_then_approved_when_it_ends(cooling):
    case = _approve_all(cooling, "R-P-1")
    state = live_case(cooling, "R-P-1")
    assert state.state == "cooling_off"
    assert state.cooling_until == cooling.clock.now() + dt.timedelta(days=7)
    assert end_cooling(at(cooling, TODAY + dt.timedelta(days=6))) == {
        "cooling_ended": 0, "cooling_held": 0}
    assert live_case(cooling, "R-P-1").state == "cooling_off"
    later = at(cooling, TODAY + dt.timedelta(days=7))
    assert end_cooling(later)["cooling_ended"] == 1
    assert live_case(cooling, "R-P-1").state == "approved"
    assert audit_counts(cooling)["CoolingOffEnded"] == 1
    assert end_cooling(later)["cooling_ended"] == 0
    assert active_approvers(cooling, case) == ["manager.sch01", "officer.ig"]
    assert _verified(cooling)


def test_hold_during_cooling_off_wins(cooling):
    _approve_all(cooling, "R-P-1")
    hold = place_hold(cooling, scope="record:R-P-1", hold_type="legal", reason="claim")
    assert _stage(cooling, "R-P-1") == ("held", 0, "service-managers")
    assert end_cooling(at(cooling, TODAY + dt.timedelta(days=8)))["cooling_ended"] == 0
    lift_hold(cooling, hold.id, reason="settled")
    assert _stage(cooling, "R-P-1") == ("pending_review", 0, "service-managers")


def test_hold_placed_by_a_filter_at_the_end_of_cooling_off(cooling):
    """A hold that covers the record when the wait ends: held, not approved."""
    _approve_all(cooling, "R-P-1")
    with cooling.sessions.begin() as session:
        # A category hold placed straight in the table (as a hold placed in another
        # instance that has not moved the case yet): the end of cooling-off re-checks.
        session.add(m.Hold(scope_kind="category", scope_value="education.pupil_record",
                           hold_type="inquiry", reason="synthetic", placed_by="officer.one",
                           placed_at=cooling.clock.now()))
    assert end_cooling(at(cooling, TODAY + dt.timedelta(days=7))) == {
        "cooling_ended": 0, "cooling_held": 1}
    assert live_case(cooling, "R-P-1").state == "held"


def test_cancel_cooling_off(cooling):
    case = _approve_all(cooling, "R-P-1")
    (view,) = cancel_cooling(as_actor(cooling, "officer.ig2"), [case], reason="parent query")
    assert view.state == "pending_review" and view.stage == 0
    assert active_approvers(cooling, case) == []
    cancel_cooling(as_actor(cooling, "officer.ig2"), [case], reason="sent twice")
    assert audit_counts(cooling)["CoolingOffCancelled"] == 1
    with pytest.raises(LifecycleError, match="only a case cooling off"):
        cancel_cooling(cooling, [live_case(cooling, "R-REF").id], reason="not cooling")


def test_cancel_racing_the_end_of_cooling_off(cooling, tmp_path):
    """Whichever commits first wins; the other sees it and changes nothing."""
    later = TODAY + dt.timedelta(days=7)
    for round_ in range(4):
        key = "R-P-1" if round_ % 2 == 0 else "R-P-2"
        if key == "R-P-2":
            case = live_case(cooling, key).id
            approve(as_actor(cooling, "manager.sch01"), [case], reason="ok")
            approve(as_actor(cooling, "officer.ig"), [case], reason="ok")
            approve(as_actor(cooling, "officer.dpo"), [case], reason="ok")
        else:
            case = _approve_all(cooling, key)
        assert live_case(cooling, key).state == "cooling_off"
        ig = at(cooling, later, actor="officer.ig2")
        ender = at(cooling, later)
        outcomes = together(lambda ig=ig, case=case: cancel_cooling(ig, [case], reason="stop"),
                            lambda ender=ender: end_cooling(ender))
        only_refusals(outcomes)
        final = live_case(cooling, key)
        if outcomes[0].error is None:
            assert final.state == "pending_review" and final.stage == 0
            assert active_approvers(cooling, case) == []
        else:
            assert final.state == "approved"
            assert "changed while" in str(outcomes[0].error) or "is approved" in str(
                outcomes[0].error)
        if final.state == "approved":
            # Back to review for the next round (a new case under the same rule).
            reject(cooling, [case], reason="next round")
            with cooling.sessions.begin() as session:
                record = session.get(m.Record, final.record_id)
                record.rejected_due_on = None
            evaluate(cooling, TODAY)
    assert _verified(cooling)


def test_execution_claims_only_approved_cases(cooling):
    """A cooling-off case is never claimed; ``execute_due`` first ends the waits that ended."""
    from retentiond.lifecycle.execute import _ready

    _approve_all(cooling, "R-P-1")
    with cooling.sessions() as session:
        ready = session.scalars(select(m.Disposal.id).where(_ready(cooling.clock.now()))).all()
    assert ready == []


def test_exception_resolved_by_correcting_the_facts(staged, tmp_path):
    """The IG officer corrects the record (a re-import with another date of birth): recompute
    withdraws the case raised as an exception, and no case stays open on the old decision."""
    case = live_case(staged, "R-P-1").id
    raise_exception(as_actor(staged, "manager.sch01"), [case], reason="date of birth wrong")
    load_records(staged, tmp_path, [pupil("R-P-1", "2010-01-01", controller="SCH-01")])
    with staged.sessions() as session:
        assert session.get(m.Disposal, case).state == "withdrawn"
    evaluate(staged, TODAY)
    assert [c.state for c in disposals_of(staged, "R-P-1")] == ["withdrawn"]


def test_automatic_approval_waits_out_the_cooling_off(ctx, tmp_path):
    """A rule that approves automatically and has a cooling-off queues its cases cooling
    off, not approved."""
    from conftest import DEFAULT_PACK

    from retentiond.policy import load_policy_set

    text = DEFAULT_PACK.read_text(encoding="utf-8")
    head, marker, tail = text.partition('id = "isa.safeguarding.referral"')
    tail = tail.replace("auto_approve = false\n", "auto_approve = true\ncooling_off_days = 3\n",
                        1)
    (tmp_path / "auto.toml").write_text(head + marker + tail, encoding="utf-8")
    auto = with_policy(ctx, load_policy_set([tmp_path / "auto.toml"]))
    seed_controllers(auto, tmp_path)
    load_records(auto, tmp_path, [referral("R-AUTO", "2015-01-01")])
    evaluate(auto, TODAY)
    case = live_case(auto, "R-AUTO")
    assert case.state == "cooling_off" and case.cooling_off_days == 3
    assert case.cooling_until == auto.clock.now() + dt.timedelta(days=3)
    assert end_cooling(at(auto, TODAY + dt.timedelta(days=3)))["cooling_ended"] == 1
    assert live_case(auto, "R-AUTO").state == "approved"


def test_a_hold_on_an_exception_sends_it_on_to_held(staged):
    case = live_case(staged, "R-P-1").id
    raise_exception(as_actor(staged, "officer.ig"), [case], reason="query")
    place_hold(staged, scope="record:R-P-1", hold_type="police", reason="request")
    (view,) = resume(as_actor(staged, "officer.ig"), [case], reason="sent on")
    assert view.state == "held"


def test_executor_refuses_a_staged_case_approved_by_too_few_people(staged):
    """However a staged case came to be approved (here: written by hand after one stage),
    the executor counts one different person per stage and withdraws it."""
    from retentiond.connectors import ConnectorRegistry
    from retentiond.lifecycle.execute import execute_due

    case = live_case(staged, "R-P-1").id
    approve(as_actor(staged, "manager.sch01"), [case], reason="ok")
    with staged.sessions.begin() as session:
        session.get(m.Disposal, case).state = "approved"
    result = execute_due(staged, ConnectorRegistry({}, {}), owner="tests", batch_size=10,
                         lease_s=60)
    assert result.withdrawn == 1
    with staged.sessions() as session:
        assert session.get(m.Disposal, case).state == "withdrawn"


def test_an_exception_racing_the_last_approval(cooling):
    """Whichever commits first, a case in exception has no approval standing, and a case
    cooling off has one per stage."""
    for key in ("R-P-1", "R-P-2"):
        case = live_case(cooling, key).id
        approve(as_actor(cooling, "manager.sch01"), [case], reason="ok")
        if key == "R-P-2":
            approve(as_actor(cooling, "officer.ig2"), [case], reason="ok")
        last = as_actor(cooling, "officer.dpo" if key == "R-P-2" else "officer.ig")
        raiser = as_actor(cooling, "officer.both")
        outcomes = together(
            lambda last=last, case=case: approve(last, [case], reason="last stage"),
            lambda raiser=raiser, case=case: raise_exception(raiser, [case], reason="stop"))
        only_refusals(outcomes)
        final = live_case(cooling, key)
        people = active_approvers(cooling, case)
        if final.state == "exception":
            assert people == []
        else:
            assert final.state == "cooling_off" and len(people) == (3 if key == "R-P-2" else 2)
    assert _verified(cooling)
