"""Random interleavings of approve, hold, lift, defer, evaluate and execute by several people,
on real SQLite and PostgreSQL (hypothesis, ``RuleBasedStateMachine``).

After every step: no case is approved (or further on) by fewer different people than its rule
needs, and no person has two live approvals of one case; no approval was recorded, and no
execution started, while a hold covered the record, and no record's data is gone unless its
case was executed; the audit chain verifies. Some steps run two calls at the same moment in
threads: one person approving from two sessions, an approval against a hold, a lift against a
new hold, an execution against a hold.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_ADMIN_URL, TODAY
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from int_support import cp_case, load_records, referral, seed_controllers
from sod_support import only_refusals, three_approver_policy, together
from sqlalchemy import func, select, text

from retentiond.audit import verify
from retentiond.clock import FixedClock
from retentiond.config import Config
from retentiond.connectors import load_connectors
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve, defer
from retentiond.registry import models as m
from retentiond.registry.db import make_engine, session_factory

PEOPLE = ("approver.a", "approver.b", "approver.c")
#: Two child protection cases (three approvers under this policy), a looked-after child's
#: record (two) and a referral (one), each a folder the filesystem connector deletes.
RECORDS = ("R-CP-1", "R-CP-2", "R-LAC", "R-REF")
#: States in which a case has been approved: its approvals must number its rule's people.
APPROVED_ONWARDS = ("approved", "executing", "pending_confirmation", "executed", "certified",
                    "notified")
EXAMPLES = {"sqlite": 25, "postgresql": 15}
STEPS = 25


class _Registry:
    """A fresh migrated registry per example: a copy of the SQLite template, or a PostgreSQL
    database made from the template."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, tmp: Path) -> None:
        self.backend, self.request, self.tmp = backend, request, tmp

    def new(self) -> str:
        if self.backend == "sqlite":
            path = self.tmp / f"{uuid.uuid4().hex[:10]}.db"
            shutil.copy(self.request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        admin = self.request.getfixturevalue("pg_admin")
        template = self.request.getfixturevalue("pg_template")
        name = f"retentiond_p_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    def drop(self, url: str) -> None:
        if self.backend == "postgresql":
            name = url.rsplit("/", 1)[1]
            with self.request.getfixturevalue("pg_admin").connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def machine(registry: _Registry, tmp: Path) -> type[RuleBasedStateMachine]:
    """The state machine, over a registry made fresh for each example."""
    counter = itertools.count()

    class SeparationOfDuties(RuleBasedStateMachine):
        holds = Bundle("holds")

        def __init__(self) -> None:
            super().__init__()
            self.url = registry.new()
            self.engine = make_engine(self.url)
            folder = tmp / f"example-{next(counter)}"
            self.files = folder / "files"
            self.files.mkdir(parents=True)
            policy = three_approver_policy(folder)
            clock = FixedClock(dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=dt.UTC))
            self.ctx = Context(sessions=session_factory(self.engine), policy=policy, clock=clock,
                               actor="officer.one")
            seed_controllers(self.ctx, folder)
            rows: list[dict[str, Any]] = [
                cp_case("R-CP-1", "1980-01-01", system="files", locator="R-CP-1"),
                cp_case("R-CP-2", "1981-01-01", system="files", locator="R-CP-2"),
                {"record_id": "R-LAC", "category": "looked_after.case_record",
                 "controller": "LA-01", "subject_ref": "S-LAC", "date_of_birth": "1940-01-01",
                 "system": "files", "locator": "R-LAC"},
                referral("R-REF", "2015-01-01", system="files", locator="R-REF"),
            ]
            load_records(self.ctx, folder, rows)
            for key in RECORDS:
                (self.files / key).mkdir()
                (self.files / key / "case.txt").write_text("synthetic case file\n")
            self.connectors = load_connectors(Config(
                source=str(folder / "retentiond.toml"),
                raw={"connectors": {"files": {"kind": "filesystem", "root": str(self.files)}}}))
            evaluate(self.ctx, TODAY)

        def teardown(self) -> None:
            self.connectors.close()
            self.engine.dispose()
            registry.drop(self.url)

        def as_(self, person: str) -> Context:
            return Context(sessions=self.ctx.sessions, policy=self.ctx.policy,
                           clock=self.ctx.clock, actor=person)

        def live_case(self, key: str) -> int | None:
            with self.ctx.sessions() as session:
                return session.scalar(
                    select(m.Disposal.id).join(m.Record, m.Record.id == m.Disposal.record_id)
                    .where(m.Record.record_key == key, m.Disposal.state.in_(m.OPEN_STATES)))

        def _approve(self, person: str, key: str) -> Any:
            cid = self.live_case(key)
            if cid is not None:
                return approve(self.as_(person), [cid], reason="reviewed")
            return None

        # --- rules --------------------------------------------------------------------------

        @rule(person=st.sampled_from(PEOPLE), key=st.sampled_from(RECORDS))
        def approve_once(self, person: str, key: str) -> None:
            only_refusals(together(lambda: self._approve(person, key)))

        @rule(person=st.sampled_from(PEOPLE), key=st.sampled_from(RECORDS))
        def approve_from_two_sessions(self, person: str, key: str) -> None:
            only_refusals(together(lambda: self._approve(person, key),
                                   lambda: self._approve(person, key)))

        @rule(target=holds, person=st.sampled_from(PEOPLE), key=st.sampled_from(RECORDS))
        def approve_against_a_hold(self, person: str, key: str) -> int:
            outcomes = together(
                lambda: self._approve(person, key),
                lambda: place_hold(self.ctx, scope=f"record:{key}", hold_type="legal",
                                   reason="synthetic claim"))
            only_refusals(outcomes)
            assert outcomes[1].error is None
            return int(outcomes[1].result.id)

        @rule(target=holds, key=st.sampled_from(RECORDS))
        def hold(self, key: str) -> int:
            return place_hold(self.ctx, scope=f"record:{key}", hold_type="police",
                              reason="synthetic request").id

        @rule(hold_id=consumes(holds))
        def lift(self, hold_id: int) -> None:
            lift_hold(self.ctx, hold_id, reason="settled")

        @rule(target=holds, hold_id=consumes(holds), key=st.sampled_from(RECORDS))
        def lift_against_a_new_hold(self, hold_id: int, key: str) -> int:
            outcomes = together(
                lambda: lift_hold(self.ctx, hold_id, reason="settled"),
                lambda: place_hold(self.ctx, scope=f"record:{key}", hold_type="inquiry",
                                   reason="synthetic inquiry"))
            assert [o.error for o in outcomes] == [None, None]
            return int(outcomes[1].result.id)

        @rule(key=st.sampled_from(RECORDS))
        def defer_a_case(self, key: str) -> None:
            cid = self.live_case(key)
            if cid is not None:
                only_refusals(together(lambda: defer(self.ctx, [cid], reason="not yet",
                                                     until=TODAY + dt.timedelta(days=30))))

        @rule()
        def evaluate_again(self) -> None:
            evaluate(self.ctx, TODAY)

        @rule(against_a_hold=st.sampled_from((None, *RECORDS)))
        def execute(self, against_a_hold: str | None) -> None:
            calls = [lambda: execute_due(self.ctx, self.connectors, owner="w", batch_size=10,
                                         lease_s=60)]
            if against_a_hold is not None:
                calls.append(lambda: place_hold(self.ctx, scope=f"record:{against_a_hold}",
                                                hold_type="complaint", reason="synthetic"))
            only_refusals(together(*calls))

        # --- invariants ---------------------------------------------------------------------

        @invariant()
        def enough_different_people(self) -> None:
            with self.ctx.sessions() as session:
                people = (select(func.count(func.distinct(m.Approval.approver)))
                          .where(m.Approval.disposal_id == m.Disposal.id,
                                 m.Approval.voided_at.is_(None))
                          .correlate(m.Disposal).scalar_subquery())
                short = session.execute(
                    select(m.Disposal.id, m.Disposal.state, people, m.Disposal.approvals_required)
                    .where(m.Disposal.state.in_(APPROVED_ONWARDS),
                           people < m.Disposal.approvals_required)).all()
                repeated = session.execute(
                    select(m.Approval.disposal_id, m.Approval.approver)
                    .where(m.Approval.voided_at.is_(None))
                    .group_by(m.Approval.disposal_id, m.Approval.approver)
                    .having(func.count() > 1)).all()
                approved_short = [
                    e.entity_id for e in session.scalars(
                        select(m.AuditEvent).where(m.AuditEvent.kind == "DisposalApproved"))
                    if e.data.get("approvals", 0) < e.data.get("approvals_required", 1)]
            assert short == [] and repeated == [] and approved_short == []

        @invariant()
        def nothing_held_is_approved_or_executed(self) -> None:
            """No approval was recorded, and no execution claimed, while a hold placed before
            it covered the record (the audit chain's order is the commit order); a record's
            data is gone only if its case was executed; a live case under a hold is held."""
            with self.ctx.sessions() as session:
                case_key = dict(session.execute(
                    select(m.Disposal.id, m.Record.record_key)
                    .join(m.Record, m.Record.id == m.Disposal.record_id)).all())
                events = session.execute(
                    select(m.AuditEvent.kind, m.AuditEvent.entity_id, m.AuditEvent.data)
                    .where(m.AuditEvent.kind.in_(
                        ["HoldPlaced", "HoldLifted", "DisposalApproved", "DisposalClaimed",
                         "DisposalExecuted"]))
                    .order_by(m.AuditEvent.seq)).all()
                executed = set(session.scalars(
                    select(m.Record.record_key).join(m.Disposal, m.Disposal.record_id == m.Record.id)
                    .where(m.Disposal.state == "executed")))
            active: dict[str, set[str]] = {}
            hold_key: dict[str, str] = {}
            held_at_claim: dict[int, set[str]] = {}
            for kind, entity_id, data in events:
                if kind == "HoldPlaced":
                    hold_key[entity_id] = data["scope"].removeprefix("record:")
                    active.setdefault(hold_key[entity_id], set()).add(entity_id)
                elif kind == "HoldLifted":
                    active[hold_key[entity_id]].discard(entity_id)
                else:
                    cid = int(entity_id)
                    key = case_key[cid]
                    if kind == "DisposalClaimed":
                        held_at_claim[cid] = set(active.get(key, ()))
                    elif kind == "DisposalExecuted":
                        assert not held_at_claim[cid], f"{key} executed under a hold"
                    else:
                        assert not active.get(key), f"{key} approved under holds {active[key]}"
            for key in RECORDS:
                if not (self.files / key).exists():
                    assert key in executed, f"{key}'s data is gone but it was not executed"
                if active.get(key) and self.live_case(key) is not None:
                    assert self._state(key) == "held", key

        def _state(self, key: str) -> str | None:
            cid = self.live_case(key)
            with self.ctx.sessions() as session:
                return session.scalar(select(m.Disposal.state).where(m.Disposal.id == cid))

        @invariant()
        def audit_chain_verifies(self) -> None:
            with self.ctx.sessions() as session:
                result = verify(session)
            assert result.ok, result.problem

    return SeparationOfDuties


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_random_interleavings_keep_separation_of_duties(backend, request, tmp_path):
    """Random sequences of approvals (one person in two sessions at once, and against a
    hold), holds, lifts (against a new hold), deferrals, evaluations and executions (against
    a hold) never leave a case approved by too few people, an approval or execution under a
    hold, or an audit chain that does not verify."""
    run_state_machine_as_test(
        machine(_Registry(backend, request, tmp_path), tmp_path),
        settings=settings(max_examples=EXAMPLES[backend], stateful_step_count=STEPS,
                          deadline=None, database=None,
                          suppress_health_check=list(HealthCheck)))
