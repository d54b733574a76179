"""Bulk review by filter on real SQLite and PostgreSQL: the same outcome as approving one case
at a time, the count the person confirmed, races with other reviewers and with holds, and an
audit chain that still verifies (issue 14, item 5)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from conftest import TODAY
from int_support import (
    as_actor,
    at,
    audit_counts,
    cp_case,
    live_case,
    load_records,
    referral,
    seed_controllers,
    snapshot,
)
from sqlalchemy import func, select

from retentiond.audit.chain import verify
from retentiond.lifecycle.bulk_review import (
    SelectionChanged,
    approve_matching,
    defer_matching,
    preview_matching,
    reject_matching,
)
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.filters import Criteria
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.presence import locator_digest
from retentiond.lifecycle.review import approve, defer, reject
from retentiond.registry import models as m

#: The day the "not due" cases are looked at from: before they fall due.
EARLY = dt.date(2026, 3, 1)


def _estate(controller: str, tag: str) -> list[dict[str, Any]]:
    """One controller's share of a mixed estate (``tag`` keeps record ids apart)."""
    return [
        *[referral(f"{tag}-R{i}", "2015-01-01", controller=controller, system="files",
                   locator=f"/{tag}/r{i}") for i in range(6)],
        *[cp_case(f"{tag}-CP{i}", "1980-01-01", controller=controller, opened_on="1975-01-01")
          for i in range(3)],
        referral(f"{tag}-HELD", "2015-01-01", controller=controller),
        referral(f"{tag}-LATE", "2020-06-01", controller=controller),
        referral(f"{tag}-GONE", "2015-01-01", controller=controller, system="files",
                 locator=f"/{tag}/gone"),
    ]


def _not_found(ctx: Context, key: str) -> None:
    """Record that the record's data was not found in its system (as ``check_presence``)."""
    with ctx.sessions.begin() as session:
        rec = session.scalar(select(m.Record).where(m.Record.record_key == key))
        assert rec is not None
        session.add(m.RecordPresence(record_id=rec.id, system=rec.system,
                                     locator_sha256=locator_digest(rec.system, rec.locator),
                                     found=False, checked_at=ctx.clock.now()))


@pytest.fixture
def mixed(ctx: Context, tmp_path: Any) -> Context:
    """Two identical mixed estates, one per controller (SCH-01 for bulk, SCH-02 for one at a
    time): one-approver cases, two-approver cases (one already approved by the actor), a held
    record, a case not due on ``EARLY``, and one whose data was not found."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [*_estate("SCH-01", "A"), *_estate("SCH-02", "B")])
    evaluate(ctx, TODAY)
    for tag in ("A", "B"):
        place_hold(ctx, scope=f"record:{tag}-HELD", hold_type="legal", reason="claim")
        approve(ctx, [live_case(ctx, f"{tag}-CP0").id], reason="first look")
        _not_found(ctx, f"{tag}-GONE")
    return ctx


def _outcome(ctx: Context, tag: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each record of one estate (without its tag): its live case's state and approvers."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(m.Record.record_key, m.Disposal.id, m.Disposal.state)
            .join(m.Disposal, m.Disposal.record_id == m.Record.id)
            .where(m.Record.record_key.like(f"{tag}-%"))).all()
        out = {}
        for key, ident, state in rows:
            people = tuple(sorted(session.scalars(select(m.Approval.approver).where(
                m.Approval.disposal_id == ident, m.Approval.voided_at.is_(None)))))
            out[key.split("-", 1)[1]] = (state, people)
        return out


def _one_by_one(ctx: Context, tag: str, action: Callable[[Context, list[int]], Any]) -> None:
    with ctx.sessions() as session:
        ids = list(session.scalars(
            select(m.Disposal.id).join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Record.record_key.like(f"{tag}-%"))))
    for ident in ids:
        with contextlib.suppress(LifecycleError):
            action(ctx, [ident])


def _chain_ok(ctx: Context) -> None:
    with ctx.sessions() as session:
        result = verify(session)
    assert result.ok, result.problem


SCH01 = Criteria(controller="SCH-01", state="pending_review")


def test_bulk_approval_equals_one_by_one(mixed: Context) -> None:
    """Approving by filter leaves every case as approving each one by one does, counts what
    it left out by reason, and leaves the other controller's cases alone."""
    early = at(mixed, EARLY, actor="officer.one")
    every_state = Criteria(controller="SCH-01")
    preview = preview_matching(early, "approve", every_state)
    assert (preview.matching, preview.acting) == (12, 8)
    assert {lo.code: lo.count for lo in preview.left_out} == {
        "held": 1, "not_due": 1, "already_approved": 1, "not_found": 1}
    assert "1 is under a hold" in preview.left_out_words()
    before_b = _outcome(mixed, "B")
    result = approve_matching(early, every_state, reason="reviewed as a batch", expected=8)
    assert (result.matching, result.acted, result.completed, result.waiting) == (12, 8, 6, 2)
    assert _outcome(mixed, "B") == before_b
    _one_by_one(early, "B", lambda c, ids: approve(c, ids, reason="reviewed"))
    assert _outcome(mixed, "A") == _outcome(mixed, "B")
    _chain_ok(mixed)


def test_second_person_completes_two_approver_cases(mixed: Context) -> None:
    """A second, different person's bulk approval completes the two-approver cases; the same
    person again finds nothing left to approve."""
    approve_matching(mixed, SCH01, reason="first", expected=9)
    again = preview_matching(mixed, "approve", SCH01)
    assert again.acting == 0
    assert {lo.code: lo.count for lo in again.left_out}["already_approved"] == 3
    second = as_actor(mixed, "officer.two")
    preview = preview_matching(second, "approve", SCH01)
    assert preview.acting == 3
    result = approve_matching(second, SCH01, reason="second", expected=3)
    assert result.completed == 3
    for i in range(3):
        assert live_case(mixed, f"A-CP{i}").state == "approved"
    _chain_ok(mixed)


def test_acknowledged_not_found_is_included_and_recorded(mixed: Context) -> None:
    """With the acknowledgement the case whose data was not found is approved, and its audit
    event names the system."""
    preview = preview_matching(mixed, "approve", SCH01, acknowledge_not_found=True)
    assert preview.acting == 10
    approve_matching(mixed, SCH01, reason="looked", expected=10, acknowledge_not_found=True)
    gone = live_case(mixed, "A-GONE")
    assert gone.state == "approved"
    with mixed.sessions() as session:
        data = session.scalar(select(m.AuditEvent.data).where(
            m.AuditEvent.entity_id == str(gone.id), m.AuditEvent.kind == "DisposalApproved"))
    assert data["acknowledged_not_found"] == "files"
    _chain_ok(mixed)


def test_count_mismatch_refuses_and_changes_nothing(mixed: Context) -> None:
    """A count other than what the filter now selects is refused, naming both numbers, and
    nothing is written."""
    before = snapshot(mixed)
    with pytest.raises(SelectionChanged, match=r"now selects 9 .* not the 10 you confirmed"):
        approve_matching(mixed, SCH01, reason="batch", expected=10)
    assert snapshot(mixed) == before


def test_hold_placed_after_preview_refuses(mixed: Context) -> None:
    """A hold placed between the preview and the confirmation changes the count: refused."""
    preview = preview_matching(mixed, "approve", SCH01)
    place_hold(mixed, scope="record:A-R0", hold_type="police", reason="request")
    before = snapshot(mixed)
    with pytest.raises(SelectionChanged):
        approve_matching(mixed, SCH01, reason="batch", expected=preview.acting)
    assert snapshot(mixed) == before
    assert live_case(mixed, "A-R0").state == "held"


@pytest.mark.parametrize("reason", ["", "   ", "\u200b\u2060", "\ufeff\u3164"])
def test_reason_must_be_visible(mixed: Context, reason: str) -> None:
    """A reason of nothing a reader can see is refused before anything is read or written."""
    before = snapshot(mixed)
    with pytest.raises(LifecycleError, match="reason"):
        approve_matching(mixed, SCH01, reason=reason, expected=9)
    assert snapshot(mixed) == before


def test_bulk_defer_and_reject_equal_one_by_one(mixed: Context) -> None:
    """Deferring and rejecting by filter match ``review.defer`` and ``review.reject`` case by
    case, records included."""
    until = dt.date(2027, 6, 1)
    cat = Criteria(controller="SCH-01", category="safeguarding.referral")
    preview = preview_matching(mixed, "defer", cat)
    assert preview.acting == preview.matching == 9
    defer_matching(mixed, cat, reason="later", until=until, expected=9)
    rest = Criteria(controller="SCH-01")
    preview = preview_matching(mixed, "reject", rest)
    assert preview.acting == 3 and {lo.code for lo in preview.left_out} == {"not_closable"}
    reject_matching(mixed, rest, reason="keep", expected=3)
    _one_by_one(mixed, "B", lambda c, ids: defer(c, ids, reason="later", until=until)
                if _category(c, ids[0]) == "safeguarding.referral" else None)
    _one_by_one(mixed, "B", lambda c, ids: reject(c, ids, reason="keep"))
    assert _outcome(mixed, "A") == _outcome(mixed, "B")
    assert _records(mixed, "A") == _records(mixed, "B")
    assert _records(mixed, "A")["R0"] == (until, None)
    assert _records(mixed, "A")["CP1"][1] is not None
    counts = audit_counts(mixed)
    assert counts["DisposalsDeferredByFilter"] == 1 and counts["DisposalsRejectedByFilter"] == 1
    _chain_ok(mixed)


def _category(ctx: Context, disposal_id: int) -> str:
    with ctx.sessions() as session:
        return str(session.scalar(select(m.Record.category).join(
            m.Disposal, m.Disposal.record_id == m.Record.id).where(m.Disposal.id == disposal_id)))


def _records(ctx: Context, tag: str) -> dict[str, tuple[Any, Any]]:
    with ctx.sessions() as session:
        return {r.record_key.split("-", 1)[1]: (r.deferred_until, r.rejected_due_on)
                for r in session.scalars(select(m.Record).where(
                    m.Record.record_key.like(f"{tag}-%")))}


def test_expected_must_be_a_count(mixed: Context) -> None:
    """``expected`` below zero is refused naming the field."""
    with pytest.raises(LifecycleError, match="expected"):
        approve_matching(mixed, SCH01, reason="batch", expected=-1)


def _race(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run the functions at once in threads; each one's result or exception."""
    barrier = threading.Barrier(len(fns))
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fns[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _short_of_people(ctx: Context) -> list[int]:
    """Approved cases with fewer different live approvers than their rule needs."""
    with ctx.sessions() as session:
        people = (select(func.count(func.distinct(m.Approval.approver)))
                  .where(m.Approval.disposal_id == m.Disposal.id,
                         m.Approval.voided_at.is_(None))
                  .correlate(m.Disposal).scalar_subquery())
        return list(session.scalars(select(m.Disposal.id).where(
            m.Disposal.state == "approved", people < m.Disposal.approvals_required)))


@pytest.mark.parametrize("round_", range(3))
def test_two_people_bulk_approving_at_once(ctx: Context, tmp_path: Any, round_: int) -> None:
    """Two people, and one of them from two sessions, approving the same selection at once:
    no case is approved by fewer different people than its rule needs, nobody approves a case
    twice, and the chain verifies."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        *[cp_case(f"CP{i}", "1980-01-01", opened_on="1975-01-01") for i in range(40)],
        *[referral(f"R{i}", "2015-01-01") for i in range(40)]])
    evaluate(ctx, TODAY)
    crit = Criteria(state="pending_review")
    one, two = ctx, as_actor(ctx, "officer.two")
    outcomes = _race([
        lambda: approve_matching(one, crit, reason="one", expected=80),
        lambda: approve_matching(two, crit, reason="two", expected=80),
        lambda: approve_matching(one, crit, reason="one again", expected=80),
    ])
    succeeded = [o for o in outcomes if not isinstance(o, Exception)]
    assert all(isinstance(o, LifecycleError) for o in outcomes if isinstance(o, Exception)), \
        outcomes
    assert succeeded, outcomes
    assert _short_of_people(ctx) == []
    with ctx.sessions() as session:
        repeats = session.execute(
            select(m.Approval.disposal_id, m.Approval.approver, func.count())
            .where(m.Approval.voided_at.is_(None))
            .group_by(m.Approval.disposal_id, m.Approval.approver)
            .having(func.count() > 1)).all()
    assert repeats == []
    _chain_ok(ctx)


@pytest.mark.parametrize("round_", range(3))
def test_hold_placed_during_bulk_approval(ctx: Context, tmp_path: Any, round_: int) -> None:
    """A hold placed while a bulk approval runs: whichever commits first, the held case ends
    held, never approved, and nothing else is lost."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [referral(f"R{i}", "2015-01-01") for i in range(3000)])
    evaluate(ctx, TODAY)
    crit = Criteria(state="pending_review")
    outcomes = _race([
        lambda: approve_matching(ctx, crit, reason="batch", expected=3000),
        lambda: place_hold(ctx, scope=f"record:R{1500 + round_}", hold_type="police",
                           reason="request"),
    ])
    assert not isinstance(outcomes[1], Exception), outcomes[1]
    assert live_case(ctx, f"R{1500 + round_}").state == "held"
    if isinstance(outcomes[0], Exception):
        assert isinstance(outcomes[0], SelectionChanged), outcomes[0]
    else:
        assert outcomes[0].acted == 3000
    with ctx.sessions() as session:
        approved = session.scalar(select(func.count()).select_from(m.Disposal)
                                  .where(m.Disposal.state == "approved"))
    assert approved in (0, 2999)
    _chain_ok(ctx)


# --- staged cases, groups and scopes (issue 14 items 1 and 2, through the bulk path) -------

STAGES = ("service", "ig", "dpo")


def _stage_cases(ctx: Context, keys: list[str], *, cooling_off_days: int = 0) -> None:
    """Make the cases of ``keys`` staged (service, then ig, then dpo), waiting for stage 0,
    as evaluate writes them for a rule with ``stages``."""
    with ctx.sessions.begin() as session:
        for key in keys:
            case_ = session.scalar(select(m.Disposal).join(m.Record).where(
                m.Record.record_key == key, m.Disposal.state == "pending_review"))
            assert case_ is not None
            case_.stage, case_.stage_group = 0, STAGES[0]
            case_.cooling_off_days = cooling_off_days
            for position, group in enumerate(STAGES):
                session.add(m.DisposalStage(disposal_id=case_.id, position=position,
                                            name=group, group_name=group))


def _groups(ctx: Context, members: dict[str, tuple[str, ...]]) -> None:
    with ctx.sessions.begin() as session:
        for group in STAGES:
            session.add(m.ReviewGroup(name=group, label=group.upper(),
                                      created_at=ctx.clock.now()))
        session.flush()
        for user, groups in members.items():
            for group in groups:
                session.add(m.GroupMember(group_name=group, username=user))


@pytest.fixture
def staged(ctx: Context, tmp_path: Any) -> Context:
    """Six staged referrals of LA-01 (two with a 7-day cooling-off), three of SCH-01, two
    count cases of LA-01; svc is in service, both is in service and ig, ig1 in ig, dpo1 in
    dpo."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        *[referral(f"S{i}", "2015-01-01") for i in range(6)],
        *[referral(f"T{i}", "2015-01-01", controller="SCH-01") for i in range(3)],
        *[referral(f"C{i}", "2015-01-01") for i in range(2)]])
    evaluate(ctx, TODAY)
    _stage_cases(ctx, [f"S{i}" for i in range(4)] + [f"T{i}" for i in range(3)])
    _stage_cases(ctx, ["S4", "S5"], cooling_off_days=7)
    _groups(ctx, {"svc": ("service",), "both": ("service", "ig"), "ig1": ("ig",),
                  "dpo1": ("dpo",)})
    return ctx


def _stage_of(ctx: Context, key: str) -> tuple[str, int | None, str | None]:
    case_ = live_case(ctx, key)
    return case_.state, case_.stage, case_.stage_group


def test_staged_cases_go_stage_by_stage(staged: Context) -> None:
    """Each bulk approval satisfies the stage a case waits for and moves it to the next; a
    member of another group leaves it out ("waits for a stage you are not in"); one person in
    two groups cannot approve two stages of one case; the last stage completes it, into
    cooling-off when the rule has some."""
    every = Criteria(state="pending_review")
    ig_first = preview_matching(as_actor(staged, "ig1"), "approve", every)
    assert {lo.code: lo.count for lo in ig_first.left_out} == {"other_stage": 9}
    assert ig_first.acting == 2  # the two count cases
    both = as_actor(staged, "both")
    result = approve_matching(both, every, reason="service review", expected=11)
    assert (result.completed, result.waiting) == (2, 9)
    assert _stage_of(staged, "S0") == ("pending_review", 1, "ig")
    again = preview_matching(both, "approve", every)
    assert (again.acting, {lo.code: lo.count for lo in again.left_out}) == (
        0, {"already_approved": 9})
    approve_matching(as_actor(staged, "ig1"), every, reason="ig review", expected=9)
    assert _stage_of(staged, "S0") == ("pending_review", 2, "dpo")
    with pytest.raises(SelectionChanged):
        approve_matching(as_actor(staged, "svc"), every, reason="wrong stage", expected=9)
    done = approve_matching(as_actor(staged, "dpo1"), every, reason="dpo review", expected=9)
    assert done.completed == 9
    assert _stage_of(staged, "S0")[0] == "approved"
    cooling = live_case(staged, "S4")
    assert cooling.state == "cooling_off"
    assert cooling.cooling_until == staged.clock.now() + dt.timedelta(days=7)
    with staged.sessions() as session:
        per_case = session.execute(
            select(m.Approval.disposal_id, func.count(func.distinct(m.Approval.approver)),
                   func.count(func.distinct(m.Approval.stage)))
            .where(m.Approval.voided_at.is_(None), m.Approval.stage.is_not(None))
            .group_by(m.Approval.disposal_id)).all()
        stages_seen = {row[0]: sorted(session.scalars(
            select(m.Approval.stage).where(m.Approval.disposal_id == row[0])
            .order_by(m.Approval.id))) for row in per_case}
    assert len(per_case) == 9 and all(people == 3 == stages for _, people, stages in per_case)
    assert all(s == [0, 1, 2] for s in stages_seen.values())
    _chain_ok(staged)


def test_scoped_reviewer_selects_only_in_scope(staged: Context) -> None:
    """A reviewer scoped to SCH-01 selects only SCH-01's cases, whatever the filter; naming
    another controller selects nothing."""
    with staged.sessions.begin() as session:
        session.add(m.ReviewScope(principal_kind="user", principal="svc", controller="SCH-01",
                                  category=None))
    svc = as_actor(staged, "svc")
    preview = preview_matching(svc, "approve", Criteria(state="pending_review"))
    assert (preview.matching, preview.acting) == (3, 3)
    assert preview_matching(svc, "approve", Criteria(controller="LA-01")).matching == 0
    approve_matching(svc, Criteria(state="pending_review"), reason="school", expected=3)
    assert _stage_of(staged, "T0") == ("pending_review", 1, "ig")
    assert _stage_of(staged, "S0") == ("pending_review", 0, "service")
    rejected = preview_matching(svc, "reject", Criteria())
    assert rejected.matching == 3


def test_bulk_exception_equals_one_by_one(mixed: Context) -> None:
    """Raising an exception by filter matches ``review.raise_exception`` case by case: cases
    pending review go to ``exception`` with their approvals voided; a held case is left out."""
    from retentiond.lifecycle.bulk_review import except_matching
    from retentiond.lifecycle.review import raise_exception

    every = Criteria(controller="SCH-01")
    preview = preview_matching(mixed, "exception", every)
    assert (preview.matching, preview.acting) == (12, 11)
    assert {lo.code: lo.count for lo in preview.left_out} == {"not_exceptable": 1}
    result = except_matching(mixed, every, reason="facts look wrong", expected=11)
    assert result.acted == 11
    _one_by_one(mixed, "B", lambda c, ids: raise_exception(c, ids, reason="facts look wrong"))
    assert _outcome(mixed, "A") == _outcome(mixed, "B")
    assert _outcome(mixed, "A")["CP0"] == ("exception", ())
    assert audit_counts(mixed)["DisposalExceptionRaised"] == 22
    _chain_ok(mixed)


def test_staged_case_without_its_stages_is_left_out(staged: Context) -> None:
    """A staged case whose stage rows are gone is left out, as ``review.approve`` refuses it,
    never completed."""
    case_ = live_case(staged, "S0")
    with staged.sessions.begin() as session:
        session.query(m.DisposalStage).filter(m.DisposalStage.disposal_id == case_.id).delete()
    preview = preview_matching(as_actor(staged, "svc"), "approve",
                               Criteria(controller="LA-01", state="pending_review"))
    assert {lo.code: lo.count for lo in preview.left_out}["stages_missing"] == 1
    assert "have lost" not in preview.left_out_words()
    approve_matching(as_actor(staged, "svc"), Criteria(controller="LA-01"),
                     reason="service", expected=preview.acting)
    assert _stage_of(staged, "S0") == ("pending_review", 0, "service")


def _approval_events(ctx: Context, tag: str, since: int) -> dict[str, tuple[str, str, dict]]:
    """The approval events after event ``since`` on one estate's cases, by record (without its
    tag): kind, reason and data, less ``by_filter`` (the id of the bulk action's own event)."""
    with ctx.sessions() as session:
        keys = dict(session.execute(
            select(func.cast(m.Disposal.id, m.AuditEvent.entity_id.type), m.Record.record_key)
            .join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Record.record_key.like(f"{tag}-%"))).all())
        events = session.scalars(select(m.AuditEvent).where(
            m.AuditEvent.id > since, m.AuditEvent.entity == "disposal",
            m.AuditEvent.entity_id.in_(list(keys)),
            m.AuditEvent.kind.in_(("DisposalApproved", "DisposalApprovalRecorded")))).all()
        out = {}
        for e in events:
            key = keys[e.entity_id].split("-", 1)[1]
            assert key not in out, f"two approval events for {key} in one round"
            out[key] = (e.kind, e.reason, {k: v for k, v in (e.data or {}).items()
                                            if k != "by_filter"})
        return out


def _last_event(ctx: Context) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.max(m.AuditEvent.id))) or 0)


def test_bulk_and_one_by_one_approval_events_say_the_same(ctx: Context, tmp_path: Any) -> None:
    """Approving equal cases by filter and one at a time writes events with the same kinds,
    keys and values (the stage's number, name and group, how many stages, a count case's
    approvals required, when a cooling-off ends), round after round, so that a reader of the
    history cannot tell which way a case was approved except by ``by_filter``."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        rec for controller, tag in (("LA-01", "A"), ("SCH-01", "B")) for rec in (
            referral(f"{tag}-S", "2015-01-01", controller=controller),
            referral(f"{tag}-K", "2015-01-01", controller=controller),
            referral(f"{tag}-C", "2015-01-01", controller=controller),
            cp_case(f"{tag}-P", "1980-01-01", controller=controller, opened_on="1975-01-01"))])
    evaluate(ctx, TODAY)
    _stage_cases(ctx, ["A-S", "B-S"])
    _stage_cases(ctx, ["A-K", "B-K"], cooling_off_days=3)
    _groups(ctx, {"both": ("service", "ig"), "ig1": ("ig",), "dpo1": ("dpo",)})
    rounds = []
    for who, acting in (("both", 4), ("ig1", 3), ("dpo1", 2)):
        actor = as_actor(ctx, who)
        before = _last_event(ctx)
        result = approve_matching(actor, Criteria(controller="LA-01", state="pending_review"),
                                  reason="reviewed", expected=acting)
        assert result.acted == acting
        _one_by_one(actor, "B", lambda c, ids: approve(c, ids, reason="reviewed"))
        bulk, single = _approval_events(ctx, "A", before), _approval_events(ctx, "B", before)
        assert len(bulk) == acting
        assert bulk == single, who
        rounds.append(bulk)
    first, _, last = rounds
    assert {d.get("stage_name") for r in rounds for _, _, d in r.values()} >= set(STAGES)
    assert first["S"][2]["stage_group"] == "service" and first["S"][2]["stages"] == 3
    assert "approvals_required" not in first["S"][2] and "cooling_until" not in first["K"][2]
    assert last["K"][0] == "DisposalApproved" and "cooling_until" in last["K"][2]
    assert first["C"][2]["approvals_required"] == 1 and "stage" not in first["C"][2]
    assert first["P"][0] == "DisposalApprovalRecorded" and rounds[1]["P"][0] == "DisposalApproved"
    _chain_ok(ctx)
