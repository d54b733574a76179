"""Separation of duties under concurrency, on real SQLite and PostgreSQL (DESIGN.md section 6:
never let fewer distinct people than a rule requires approve a disposal, by any route).

One person in many sessions (threads, and separate processes) counts once; an approval and a
hold at the same moment never leave a case approved under the hold. Each race runs many
rounds, so that none passes by luck.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from conftest import TODAY
from int_support import (
    active_approvers,
    as_actor,
    audit_counts,
    cp_case,
    load_records,
    seed_controllers,
)
from sod_support import (
    approve_in_process,
    case_state,
    only_refusals,
    three_approver_pack,
    three_approver_policy,
    together,
    with_policy,
)
from sqlalchemy import event, select, update

from retentiond.audit import verify
from retentiond.config import Config
from retentiond.connectors import load_connectors
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.recompute import withdraw_stale_cases
from retentiond.lifecycle.review import approve
from retentiond.registry import models as m

#: Rounds of each race per backend.
ROUNDS = 12
SESSIONS = 6


def _queue(ctx, tmp_path, n):
    """``n`` due child protection cases, pending review; their (record key, case id)."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [cp_case(f"R-CP-{i:03}", "1980-01-01", opened_on="1975-01-01")
                                 for i in range(n)])
    evaluate(ctx, TODAY)
    return _cases(ctx)


def _cases(ctx):
    """The cases pending review: (record key, case id), in id order."""
    with ctx.sessions() as session:
        return session.execute(
            select(m.Record.record_key, m.Disposal.id)
            .join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Disposal.state == "pending_review").order_by(m.Disposal.id)).all()


@pytest.fixture
def three(ctx, tmp_path):
    """A registry whose child protection cases need three different approvers."""
    return with_policy(ctx, three_approver_policy(tmp_path))


def test_one_person_in_many_threads_is_one_approver(three, tmp_path):
    """Six simultaneous sessions of one approver on a three-approver case record one approval;
    with a second person the case stays pending review, round after round."""
    cases = _queue(three, tmp_path, ROUNDS)
    a, b = as_actor(three, "approver.a"), as_actor(three, "approver.b")
    for _key, cid in cases:
        outcomes = together(*[lambda cid=cid: approve(a, [cid], reason="reviewed")] * SESSIONS)
        only_refusals(outcomes)
        assert sum(o.error is None for o in outcomes) == 1, active_approvers(three, cid)
        only_refusals(together(*[lambda cid=cid: approve(b, [cid], reason="reviewed")] * SESSIONS))
        assert active_approvers(three, cid) == ["approver.a", "approver.b"]
        assert case_state(three, cid) == "pending_review"


def test_one_person_in_many_processes_is_one_approver(three, tmp_path, database_url, clock):
    """Four processes approving as one person at the same moment record one approval, and
    two people never approve a three-approver case."""
    cases = _queue(three, tmp_path, 4)
    pack = str(three_approver_pack(tmp_path))
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(4) as pool:
        for _key, cid in cases:
            for actor in ("approver.a", "approver.b"):
                start = time.time() + 0.3
                args = (database_url, pack, actor, cid, start, clock.now().isoformat())
                got = pool.map(approve_in_process, [args] * 4)
                assert got.count("ok") == 1, got
                assert all("already approved" in g for g in got if g != "ok"), got
            assert active_approvers(three, cid) == ["approver.a", "approver.b"]
            assert case_state(three, cid) == "pending_review"


@pytest.mark.parametrize("repeat", range(2))
def test_approve_and_hold_at_the_same_moment(ctx, tmp_path, repeat):
    """A second approval and a hold at the same moment, on 30 two-approver cases: every case
    ends held with its approvals voided, and no case's approval follows its hold in the
    audit trail."""
    cases = _queue(ctx, tmp_path, 30)
    first = as_actor(ctx, "approver.a")
    approve(first, [cid for _, cid in cases], reason="first review")
    second = as_actor(ctx, "approver.b")
    for key, cid in cases:
        outcomes = together(
            lambda cid=cid: approve(second, [cid], reason="second review"),
            lambda key=key: place_hold(ctx, scope=f"record:{key}", hold_type="legal",
                                       reason="synthetic claim"),
        )
        only_refusals(outcomes)
        assert outcomes[1].error is None
        assert case_state(ctx, cid) == "held", (key, repeat)
        assert active_approvers(ctx, cid) == []
    with ctx.sessions() as session:
        events = session.execute(
            select(m.AuditEvent.seq, m.AuditEvent.kind, m.AuditEvent.entity_id,
                   m.AuditEvent.data)
            .where(m.AuditEvent.kind.in_(["DisposalApproved", "HoldPlaced"]))).all()
        assert verify(session).ok
    hold_seq = {e.data["scope"].removeprefix("record:"): e.seq
                for e in events if e.kind == "HoldPlaced"}
    approved_seq = {int(e.entity_id): e.seq for e in events if e.kind == "DisposalApproved"}
    for key, cid in cases:
        assert approved_seq.get(cid, 0) < hold_seq[key], (key, cid)


def test_second_approval_refused_once_a_hold_has_won(ctx, tmp_path):
    """An approval that loses the race to a hold is refused and says the case is held."""
    ((key, cid),) = _queue(ctx, tmp_path, 1)
    approve(as_actor(ctx, "approver.a"), [cid], reason="first review")
    place_hold(ctx, scope=f"record:{key}", hold_type="police", reason="synthetic request")
    with pytest.raises(LifecycleError, match=f"disposal {cid} is held"):
        approve(as_actor(ctx, "approver.b"), [cid], reason="second review")


def test_withdrawal_leaves_a_case_the_executor_claimed_meanwhile(ctx, tmp_path):
    """A changed decision withdraws a case by a guarded update: when the executor claims the
    case between the withdrawal's read and its write, the case stays the executor's
    (executing, its approvals standing) and no withdrawal is recorded."""
    ((key, cid),) = _queue(ctx, tmp_path, 1)
    approve(as_actor(ctx, "approver.a"), [cid], reason="first review")
    approve(as_actor(ctx, "approver.b"), [cid], reason="second review")
    engine = ctx.sessions.kw["bind"]
    with engine.begin() as conn:
        conn.execute(update(m.Record).where(m.Record.record_key == key)
                     .values(due_on=TODAY))
    claimed = []

    def claim_first(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE DISPOSALS") and not claimed:
            claimed.append(True)
            with engine.connect() as other, other.begin():
                other.execute(update(m.Disposal).where(m.Disposal.id == cid)
                              .values(state="executing", lease_owner="executor.test"))

    event.listen(engine, "before_cursor_execute", claim_first)
    try:
        # A plain transaction, not the write lock it runs under in recompute_stale: what a
        # reader could see change before the write.
        with ctx.sessions.begin() as session:
            assert withdraw_stale_cases(ctx, session) == 0
    finally:
        event.remove(engine, "before_cursor_execute", claim_first)
    assert claimed and case_state(ctx, cid) == "executing"
    assert active_approvers(ctx, cid) == ["approver.a", "approver.b"]
    assert audit_counts(ctx)["DisposalWithdrawn"] == 0


def test_lift_and_place_at_the_same_moment_leave_the_case_held(ctx, tmp_path):
    """Lifting one hold while another is placed on the same record, 30 times: the new hold
    always wins, and the case ends held, never back in review under an active hold."""
    cases = _queue(ctx, tmp_path, 30)
    for key, cid in cases:
        first = place_hold(ctx, scope=f"record:{key}", hold_type="legal", reason="first claim")
        outcomes = together(
            lambda first=first: lift_hold(ctx, first.id, reason="claim settled"),
            lambda key=key: place_hold(ctx, scope=f"record:{key}", hold_type="police",
                                       reason="synthetic request"),
        )
        assert [o.error for o in outcomes] == [None, None]
        assert case_state(ctx, cid) == "held", key


def test_the_executor_never_carries_out_a_case_approved_by_too_few_people(ctx, tmp_path):
    """A two-approver case made ``approved`` with one approval (by hand in the database, or
    any other route) is withdrawn by the executor's check, with the count in its reason, and
    never reaches its connector."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [cp_case("R-CP", "1980-01-01", system="paper",
                                         locator="box 7")])
    evaluate(ctx, TODAY)
    ((_key, cid),) = _cases(ctx)
    approve(as_actor(ctx, "approver.a"), [cid], reason="first review")
    with ctx.sessions.begin() as session:
        session.execute(update(m.Disposal).where(m.Disposal.id == cid).values(state="approved"))
    registry = load_connectors(Config(source=str(tmp_path / "retentiond.toml"),
                                      raw={"connectors": {"paper": {"kind": "manual"}}}))
    try:
        result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60)
    finally:
        registry.close()
    assert (result.withdrawn, result.pending_confirmation, result.executed) == (1, 0, 0)
    assert case_state(ctx, cid) == "withdrawn"
    with ctx.sessions() as session:
        reason = session.scalar(select(m.AuditEvent.reason).where(
            m.AuditEvent.kind == "DisposalWithdrawn", m.AuditEvent.entity_id == str(cid)))
    assert reason.startswith("approved by 1 of the 2 different people its rule needs")
