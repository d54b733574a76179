"""``evaluate`` on real SQLite and PostgreSQL: what it queues, what it never queues, how it
reacts to review outcomes and to a policy change (DESIGN.md sections 3 and 4)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import DEFAULT_PACK, TODAY
from int_support import (
    D,
    active_approvers,
    at,
    audit_counts,
    cp_case,
    disposals_of,
    live_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    states,
)

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.recompute import AUTO_APPROVAL_WITHDRAWN_REASON
from retentiond.lifecycle.review import AUTO_APPROVER, approve, defer, reject
from retentiond.policy import load_policy_set

YESTERDAY, TOMORROW = D(2026, 11, 21), D(2026, 11, 23)


@pytest.fixture
def estate(ctx, tmp_path):
    """Records due before, on and after TODAY, never due, and held."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        pupil("R-PAST", "2001-11-21"),       # 25th birthday yesterday
        pupil("R-TODAY", "2001-11-22"),      # today
        pupil("R-FUTURE", "2001-11-23"),     # tomorrow
        referral("R-OLD", "2010-03-01"),     # due 2016-03-01
        cp_case("R-OPEN", None),             # open case: never due
        referral("R-HELD", "2012-01-01"),    # due, but held below
    ])
    place_hold(ctx, scope="record:R-HELD", hold_type="legal", reason="synthetic litigation")
    return ctx


def _pack(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """The default pack with some text replaced, written to tmp_path."""
    text = DEFAULT_PACK.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_queues_exactly_what_is_due_and_unheld(estate):
    """Every record due on or before as_of and not held is queued as pending_review; no other."""
    result = evaluate(estate, TODAY)
    assert result.queued == 3
    assert states(estate) == {"R-PAST": ["pending_review"], "R-TODAY": ["pending_review"],
                              "R-OLD": ["pending_review"]}
    case = live_case(estate, "R-TODAY")
    assert (case.due_on, case.action, case.rule_id, case.policy_version, case.approvals_required) \
        == (TODAY, "delete", "isa.education.pupil_record", estate.policy.version, 1)
    assert audit_counts(estate)["DisposalQueued"] == 3


def test_evaluating_an_earlier_day_queues_only_what_was_due_then(estate):
    """An as_of in the past (catching up a missed night) queues only what was due by then."""
    evaluate(estate, YESTERDAY)
    assert set(states(estate)) == {"R-PAST", "R-OLD"}


def test_as_of_after_today_is_refused(estate):
    """evaluate never opens a case for a record that is not due yet."""
    with pytest.raises(LifecycleError, match="after today"):
        evaluate(estate, TOMORROW)
    assert states(estate) == {}


def test_running_twice_queues_nothing_new(estate):
    """A second evaluation on the same day queues nothing and writes no queue events."""
    first = evaluate(estate, TODAY)
    second = evaluate(estate, TODAY)
    assert (first.queued, second.queued) == (3, 0)
    assert all(len(s) == 1 for s in states(estate).values())
    assert audit_counts(estate)["DisposalQueued"] == 3


def test_next_day_queues_what_became_due(estate):
    """Evaluating the next day queues only the record that became due that day."""
    evaluate(estate, TODAY)
    result = evaluate(at(estate, TOMORROW), TOMORROW)
    assert result.queued == 1
    assert states(estate)["R-FUTURE"] == ["pending_review"]


def test_deferred_record_is_not_requeued_before_its_date(estate):
    """A deferred record stays out of the queue until the defer date, then is queued afresh."""
    evaluate(estate, TODAY)
    case = live_case(estate, "R-OLD")
    defer(estate, [case.id], reason="awaiting a case review", until=D(2026, 12, 1))
    for day in (TODAY, TOMORROW, D(2026, 11, 30)):
        evaluate(at(estate, day), day)
        assert states(estate)["R-OLD"] == ["deferred"], day
    evaluate(at(estate, D(2026, 12, 1)), D(2026, 12, 1))
    assert states(estate)["R-OLD"] == ["deferred", "pending_review"]


def test_rejected_record_is_not_requeued_until_its_due_date_changes(estate, tmp_path):
    """A rejected record stays out of the queue; a change of its due date queues it again."""
    evaluate(estate, TODAY)
    reject(estate, [live_case(estate, "R-PAST").id], reason="still needed for an appeal")
    assert evaluate(at(estate, D(2027, 6, 1)), D(2027, 6, 1)).queued == 1  # only R-FUTURE
    assert states(estate)["R-PAST"] == ["rejected"]
    load_records(estate, tmp_path, [pupil("R-PAST", "2001-10-01")])  # corrected birth date
    later = at(estate, D(2027, 6, 2))
    assert evaluate(later, D(2027, 6, 2)).queued == 1
    assert states(estate)["R-PAST"] == ["rejected", "pending_review"]


def test_auto_approve_rule_queues_as_approved_with_an_approval(ctx, tmp_path):
    """A rule that allows automatic approval queues its cases as approved, with an approval
    row and a DisposalApproved event by the automatic approver."""
    path = _pack(tmp_path, "auto", (
        'id = "isa.safeguarding.referral"\ncategory = "safeguarding.referral"\n'
        'title = "Safeguarding referral: 6 years after the report"\ntrigger = "opened_on"\n'
        'period = "6y"\naction = "delete"\napprovals_required = 1\nauto_approve = false',
        'id = "isa.safeguarding.referral"\ncategory = "safeguarding.referral"\n'
        'title = "Safeguarding referral: 6 years after the report"\ntrigger = "opened_on"\n'
        'period = "6y"\naction = "delete"\napprovals_required = 1\nauto_approve = true'))
    auto_ctx = dataclasses.replace(ctx, policy=load_policy_set([path]))
    seed_controllers(auto_ctx, tmp_path)
    load_records(auto_ctx, tmp_path, [referral("R-A", "2015-01-01"), pupil("R-P", "2000-01-01")])
    result = evaluate(auto_ctx, TODAY)
    assert (result.queued, result.auto_approved) == (2, 1)
    assert states(auto_ctx) == {"R-A": ["approved"], "R-P": ["pending_review"]}
    assert active_approvers(auto_ctx, live_case(auto_ctx, "R-A").id) == [AUTO_APPROVER]
    assert active_approvers(auto_ctx, live_case(auto_ctx, "R-P").id) == []
    counts = audit_counts(auto_ctx)
    assert (counts["DisposalQueued"], counts["DisposalApproved"]) == (2, 1)


def test_policy_change_recomputes_only_changed_categories(estate, tmp_path):
    """A policy change recomputes the records of categories whose rules changed, relabels the
    rest, and withdraws the live cases whose due date moved (voiding their approvals)."""
    evaluate(estate, TODAY)
    approve(estate, [live_case(estate, "R-PAST").id], reason="reviewed")
    new = dataclasses.replace(estate, policy=load_policy_set([_pack(
        tmp_path, "edu26", ('period = "25y"', 'period = "26y"'))]))
    assert new.policy.version != estate.policy.version
    withdrawn_case = live_case(estate, "R-PAST")
    result = evaluate(new, TODAY)
    edu = [k for k, r in records_by_key(new).items() if r.category == "education.pupil_record"]
    assert (result.recompute.recomputed, result.recompute.changed) == (len(edu), len(edu))
    assert result.recompute.relabelled == len(records_by_key(new)) - len(edu)
    assert result.recompute.withdrawn == 2
    assert result.queued == 0
    assert states(new) == {"R-PAST": ["withdrawn"], "R-TODAY": ["withdrawn"],
                           "R-OLD": ["pending_review"]}
    assert active_approvers(new, withdrawn_case.id) == []
    recs = records_by_key(new)
    assert recs["R-PAST"].due_on == D(2027, 11, 21)
    assert {r.policy_version for r in recs.values()} == {new.policy.version}
    assert audit_counts(new)["DisposalWithdrawn"] == 2


def test_policy_change_that_keeps_due_dates_withdraws_nothing(estate, tmp_path):
    """A changed citation recomputes its category but withdraws no case: no due date moved."""
    evaluate(estate, TODAY)
    new = dataclasses.replace(estate, policy=load_policy_set([_pack(
        tmp_path, "cite", ("subjects' 25th birthday\"", "subjects' 25th birthday (amended)\""))]))
    result = evaluate(new, TODAY)
    assert result.recompute.recomputed == 3
    assert (result.recompute.changed, result.recompute.withdrawn, result.queued) == (0, 0, 0)
    assert all(s == ["pending_review"] for s in states(new).values())


def test_policy_change_raising_approvers_reaches_live_cases(estate, tmp_path):
    """When a policy change makes a rule need two approvers, a case already queued under it
    cannot then be approved by one person."""
    evaluate(estate, TODAY)
    new = dataclasses.replace(estate, policy=load_policy_set([_pack(
        tmp_path, "two", ('action = "delete"\napprovals_required = 1\nauto_approve = false\n'
                          "citation = \"ISA 'Effective Sharing of Educational Indicators', "
                          "retention: education",
                          'action = "delete"\napprovals_required = 2\nauto_approve = false\n'
                          "citation = \"ISA 'Effective Sharing of Educational Indicators', "
                          "retention: education"))]))
    evaluate(new, TODAY)
    case = live_case(new, "R-TODAY")
    approve(new, [case.id], reason="reviewed")
    assert live_case(new, "R-TODAY").state == "pending_review"
    assert live_case(new, "R-TODAY").approvals_required == 2


def test_fact_change_withdraws_a_live_case(estate, tmp_path):
    """Re-importing a record with facts that move its due date withdraws its live case."""
    evaluate(estate, TODAY)
    result = load_records(estate, tmp_path, [referral("R-OLD", "2024-01-01")])
    assert result.cases_withdrawn == 1
    assert states(estate)["R-OLD"] == ["withdrawn"]
    assert evaluate(estate, TODAY).queued == 0


def test_held_record_is_queued_once_the_hold_ends(estate):
    """A record that was held is queued by the first evaluation after its hold is lifted."""
    from retentiond.lifecycle.holds import lift_hold, list_holds

    evaluate(estate, TODAY)
    assert "R-HELD" not in states(estate)
    (hold,) = list_holds(estate)
    lift_hold(estate, hold.id, reason="litigation settled")
    assert evaluate(estate, TODAY).queued == 1
    assert disposals_of(estate, "R-HELD")[0].state == "pending_review"


def test_concurrent_evaluations_queue_each_record_once(ctx, tmp_path):
    """Two evaluations at once (the nightly job and an officer's command) both succeed, and
    every due record is queued exactly once."""
    import threading

    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [referral(f"R-{n:04d}", "2010-01-01") for n in range(1500)])
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run(actor):
        barrier.wait()
        try:
            results.append(evaluate(dataclasses.replace(ctx, actor=actor), TODAY).queued)
        except Exception as exc:  # the test reports any failure below
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    threads = [threading.Thread(target=run, args=(a,)) for a in ("retentiond:scheduler", "ig")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [0, 1500]
    assert all(s == ["pending_review"] for s in states(ctx).values())
    assert audit_counts(ctx)["DisposalQueued"] == 1500


def test_policy_change_removing_auto_approval_withdraws_auto_approved_cases(ctx, tmp_path):
    """A case approved automatically is withdrawn (its approval voided) when a policy change
    takes automatic approval away from its rule: the fresh case waits for a person. A case a
    person approved stays approved."""
    rule = ('id = "isa.safeguarding.referral"\ncategory = "safeguarding.referral"\n'
            'title = "Safeguarding referral: 6 years after the report"\ntrigger = "opened_on"\n'
            'period = "6y"\naction = "delete"\napprovals_required = 1\nauto_approve = ')
    auto_ctx = dataclasses.replace(ctx, policy=load_policy_set([_pack(
        tmp_path, "auto", (rule + "false", rule + "true"))]))
    seed_controllers(auto_ctx, tmp_path)
    load_records(auto_ctx, tmp_path, [referral("R-A", "2015-01-01"), pupil("R-P", "2000-01-01")])
    evaluate(auto_ctx, TODAY)
    auto_case = live_case(auto_ctx, "R-A")
    approve(auto_ctx, [live_case(auto_ctx, "R-P").id], reason="reviewed")
    assert states(auto_ctx) == {"R-A": ["approved"], "R-P": ["approved"]}
    manual_ctx = dataclasses.replace(ctx, policy=load_policy_set([DEFAULT_PACK]))
    result = evaluate(manual_ctx, TODAY)
    assert result.recompute.withdrawn == 1
    assert (result.queued, result.auto_approved) == (1, 0)
    assert states(manual_ctx) == {"R-A": ["withdrawn", "pending_review"], "R-P": ["approved"]}
    assert active_approvers(manual_ctx, auto_case.id) == []
    assert audit_counts(manual_ctx)["DisposalWithdrawn"] == 1
    assert disposals_of(manual_ctx, "R-A")[0].reason == AUTO_APPROVAL_WITHDRAWN_REASON
    # Nothing more to withdraw on the next run.
    assert evaluate(manual_ctx, TODAY).recompute.withdrawn == 0


def test_withdrawal_of_many_cases_goes_a_chunk_at_a_time(ctx, tmp_path, monkeypatch):
    """A policy change withdrawing more live cases than one chunk withdraws every one, voids
    every approval, writes one sealed event each with the old and new due dates, and leaves
    the chain intact."""
    from sqlalchemy import select

    from retentiond.audit.chain import verify
    from retentiond.lifecycle import recompute
    from retentiond.registry import models as m

    monkeypatch.setattr(recompute, "BATCH", 3)
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [pupil(f"R-{n:02d}", "2000-01-01") for n in range(10)])
    evaluate(ctx, TODAY)
    approve(ctx, [live_case(ctx, "R-04").id, live_case(ctx, "R-07").id], reason="reviewed")
    new = dataclasses.replace(ctx, policy=load_policy_set([_pack(
        tmp_path, "edu26", ('period = "25y"', 'period = "26y"'))]))
    result = evaluate(new, TODAY)
    assert result.recompute.withdrawn == 10
    assert result.queued == 10  # 26th birthdays in 2026: still due, under fresh cases
    assert all(s == ["withdrawn", "pending_review"] for s in states(new).values())
    assert active_approvers(new, disposals_of(new, "R-04")[0].id) == []
    with new.sessions() as session:
        events = session.execute(
            select(m.AuditEvent.entity_id, m.AuditEvent.data, m.AuditEvent.seq)
            .where(m.AuditEvent.kind == "DisposalWithdrawn")).all()
        assert verify(session).ok
    withdrawn_ids = {str(disposals_of(new, f"R-{n:02d}")[0].id) for n in range(10)}
    assert {e.entity_id for e in events} == withdrawn_ids and len(events) == 10
    assert {(e.data["old_due_on"], e.data["new_due_on"]) for e in events} \
        == {("2025-01-01", "2026-01-01")}
    assert all(e.seq is not None for e in events)
