"""Random interleavings of several reviewers on a three-stage rule, on real SQLite and
PostgreSQL (hypothesis, ``RuleBasedStateMachine``): approvals (two at once, by different
people or one person from two sessions), exceptions and their resumption, holds and lifts,
cancelled cooling-off and its end.

After every step: no case completes (cooling off or approved) with fewer different people
than it has stages; each live approval satisfied the stage it was given in order (0, 1, 2 by
commit order) by a member of that stage's group; a manager never approved a case outside
their school; a case pending review waits for the stage after its live approvals; the audit
chain verifies.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import TODAY
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
from int_support import load_records, pupil, seed_controllers
from sod_support import only_refusals, together
from sqlalchemy import select
from stages_support import PEOPLE, seed_reviewers, staged_policy
from test_int_sod_properties import _Registry

from retentiond.audit import verify
from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.cooling import end_cooling
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve, cancel_cooling, raise_exception, resume
from retentiond.registry import models as m
from retentiond.registry.db import make_engine, session_factory

NAMES = tuple(PEOPLE)
#: Two SCH-01 records (one flagged sensitive: three stages) and one SCH-02 record.
RECORDS = ("R-P-1", "R-P-2", "R-P-3")
SCHOOL = {"R-P-1": "SCH-01", "R-P-2": "SCH-01", "R-P-3": "SCH-02"}
EXAMPLES = {"sqlite": 20, "postgresql": 10}
STEPS = 20


def machine(registry: _Registry, tmp: Path) -> type[RuleBasedStateMachine]:
    counter = itertools.count()

    class Stages(RuleBasedStateMachine):
        holds = Bundle("holds")

        def __init__(self) -> None:
            super().__init__()
            self.url = registry.new()
            self.engine = make_engine(self.url)
            folder = tmp / f"example-{next(counter)}"
            folder.mkdir(parents=True)
            self.day = 0
            clock = FixedClock(dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12,
                                           tzinfo=dt.UTC))
            self.ctx = Context(sessions=session_factory(self.engine),
                               policy=staged_policy(folder / "pack", cooling_off_days=2),
                               clock=clock, actor="officer.one")
            seed_controllers(self.ctx, folder)
            seed_reviewers(self.ctx)
            load_records(self.ctx, folder, [
                pupil("R-P-1", "2000-01-01", controller="SCH-01"),
                pupil("R-P-2", "2000-02-01", controller="SCH-01", flags="sensitive"),
                pupil("R-P-3", "2000-03-01", controller="SCH-02"),
            ])
            evaluate(self.ctx, TODAY)

        def teardown(self) -> None:
            self.engine.dispose()
            registry.drop(self.url)

        def as_(self, person: str) -> Context:
            clock = FixedClock(dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12,
                                           tzinfo=dt.UTC) + dt.timedelta(days=self.day))
            return Context(sessions=self.ctx.sessions, policy=self.ctx.policy, clock=clock,
                           actor=person)

        def live_case(self, key: str) -> int | None:
            with self.ctx.sessions() as session:
                return session.scalar(
                    select(m.Disposal.id).join(m.Record, m.Record.id == m.Disposal.record_id)
                    .where(m.Record.record_key == key, m.Disposal.state.in_(m.OPEN_STATES)))

        def _do(self, fn: Any, person: str, key: str, **kw: Any) -> Any:
            cid = self.live_case(key)
            return None if cid is None else fn(self.as_(person), [cid], **kw)

        # --- rules --------------------------------------------------------------------------

        @rule(person=st.sampled_from(NAMES), key=st.sampled_from(RECORDS))
        def approve_once(self, person: str, key: str) -> None:
            only_refusals(together(lambda: self._do(approve, person, key, reason="ok")))

        @rule(a=st.sampled_from(NAMES), b=st.sampled_from(NAMES), key=st.sampled_from(RECORDS))
        def two_approve_at_once(self, a: str, b: str, key: str) -> None:
            only_refusals(together(lambda: self._do(approve, a, key, reason="ok"),
                                   lambda: self._do(approve, b, key, reason="ok")))

        @rule(person=st.sampled_from(NAMES), key=st.sampled_from(RECORDS))
        def raise_an_exception(self, person: str, key: str) -> None:
            only_refusals(together(
                lambda: self._do(raise_exception, person, key, reason="query")))

        @rule(key=st.sampled_from(RECORDS))
        def resume_it(self, key: str) -> None:
            only_refusals(together(
                lambda: self._do(resume, "officer.ig", key, reason="checked")))

        @rule(target=holds, key=st.sampled_from(RECORDS))
        def hold(self, key: str) -> int:
            return place_hold(self.as_("officer.one"), scope=f"record:{key}",
                              hold_type="legal", reason="synthetic").id

        @rule(hold_id=consumes(holds))
        def lift(self, hold_id: int) -> None:
            lift_hold(self.as_("officer.one"), hold_id, reason="settled")

        @rule(key=st.sampled_from(RECORDS))
        def cancel_against_the_end_of_cooling(self, key: str) -> None:
            self.day += 2
            only_refusals(together(
                lambda: self._do(cancel_cooling, "officer.ig2", key, reason="stop"),
                lambda: end_cooling(self.as_("retentiond"))))

        # --- invariants ---------------------------------------------------------------------

        @invariant()
        def stages_in_order_by_different_people_in_scope(self) -> None:
            with self.ctx.sessions() as session:
                cases = session.execute(
                    select(m.Disposal.id, m.Disposal.state, m.Disposal.stage,
                           m.Disposal.stage_group, m.Record.record_key)
                    .join(m.Record, m.Record.id == m.Disposal.record_id)).all()
                stages = {(d, p): g for d, p, g in session.execute(
                    select(m.DisposalStage.disposal_id, m.DisposalStage.position,
                           m.DisposalStage.group_name))}
                live = session.execute(
                    select(m.Approval.disposal_id, m.Approval.approver, m.Approval.stage)
                    .where(m.Approval.voided_at.is_(None)).order_by(m.Approval.id)).all()
            by_case: dict[int, list[tuple[str, int | None]]] = {}
            for d, who, stage in live:
                by_case.setdefault(d, []).append((who, stage))
            for cid, state, stage, group, key in cases:
                n = sum(1 for (d, _p) in stages if d == cid)
                approvals = by_case.get(cid, [])
                people = [who for who, _ in approvals]
                assert len(people) == len(set(people)), (key, people)
                assert [s for _, s in approvals] == list(range(len(approvals))), (key, approvals)
                for who, s in approvals:
                    assert stages[(cid, s)] in PEOPLE[who][1], (key, who, s)
                    if who.startswith("manager."):
                        assert who.endswith(SCHOOL[key].lower().replace("-", "")), (key, who)
                if state in ("cooling_off", "approved"):
                    assert len(set(people)) == n, (key, state, people)
                if state == "pending_review":
                    assert stage == len(approvals) and group == stages[(cid, stage)], (
                        key, stage, approvals)

        @invariant()
        def audit_chain_verifies(self) -> None:
            with self.ctx.sessions() as session:
                result = verify(session)
            assert result.ok, result.problem

    return Stages


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_random_interleavings_keep_stage_order_people_and_scope(backend, request, tmp_path):
    run_state_machine_as_test(
        machine(_Registry(backend, request, tmp_path), tmp_path),
        settings=settings(max_examples=EXAMPLES[backend], stateful_step_count=STEPS,
                          deadline=None, database=None,
                          suppress_health_check=list(HealthCheck)))
