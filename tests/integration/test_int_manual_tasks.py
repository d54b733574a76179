"""Manual connectors: a task for a person, executed only on confirmation with evidence."""

from __future__ import annotations

import datetime as dt

import pytest
from execution_support import (
    DUE_DOB,
    connectors,
    events,
    holding_database,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from sqlalchemy import select, update

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.tasks import confirm_destruction, list_tasks
from retentiond.registry.models import Disposal, DisposalExecution, Record

TODAY = dt.date(2026, 11, 22)


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


@pytest.fixture
def tasked(ctx, tmp_path, holding_url):
    """Two paper records whose approved cases the executor has turned into tasks."""
    make_holding(holding_url, [])
    seed(ctx, tmp_path, [
        {"record_id": "P1", "system": "paper", "locator": "box 12, shelf 3",
         "date_of_birth": DUE_DOB},
        {"record_id": "P2", "system": "paper", "locator": "box 13", "date_of_birth": DUE_DOB},
    ])
    cases = queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60)
    registry.close()
    assert (result.pending_confirmation, result.executed) == (2, 0)
    return cases


def test_executor_opens_tasks_instead_of_executing(ctx, tasked):
    """The cases wait in pending_confirmation, listed as tasks with where to find the paper."""
    assert states(ctx) == {"P1": "pending_confirmation", "P2": "pending_confirmation"}
    tasks = list_tasks(ctx)
    assert [(t.record_id, t.locator, t.connector) for t in tasks] == [
        ("P1", "box 12, shelf 3", "paper"), ("P2", "box 13", "paper")]
    assert events(ctx, tasked["P1"])[-1] == "DisposalTaskCreated"


def test_confirmation_with_evidence_executes(ctx, tasked):
    """Confirming records who, when, how and the certificate; the case is executed."""
    view = confirm_destruction(ctx, tasked["P1"], destroyed_by="Shred-It Ltd",
                               destroyed_on=TODAY, method="cross-cut shredding (DIN 66399 P-4)",
                               certificate_no="CD-2026-0042")
    assert view.state == "executed" and view.certificate_no == "CD-2026-0042"
    assert states(ctx)["P1"] == "executed" and [t.record_id for t in list_tasks(ctx)] == ["P2"]
    with ctx.sessions() as session:
        row = session.scalars(select(DisposalExecution)
                              .where(DisposalExecution.disposal_id == tasked["P1"])).one()
    assert (row.destroyed_by, row.destroyed_on, row.confirmed_by) == (
        "Shred-It Ltd", TODAY, "officer.one")
    assert row.executed_at is not None and "CD-2026-0042" in row.method
    assert events(ctx, tasked["P1"])[-1] == "DisposalExecuted"
    again = confirm_destruction(ctx, tasked["P1"], destroyed_by="Shred-It Ltd",
                                destroyed_on=TODAY, method="cross-cut shredding (DIN 66399 P-4)",
                                certificate_no="CD-2026-0042")
    assert again.state == "executed"
    assert events(ctx, tasked["P1"]).count("DisposalExecuted") == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"destroyed_on": TODAY + dt.timedelta(days=1)}, "in the future"),
    ({"destroyed_on": dt.date(2024, 12, 31)}, "before the record's due date"),
    ({"destroyed_on": TODAY - dt.timedelta(days=3)}, "before the task was opened"),
    ({"method": "  "}, "--method is required"),
    ({"destroyed_by": ""}, "--destroyed-by is required"),
])
def test_bad_evidence_is_refused(ctx, tasked, change, message):
    """Evidence that cannot be true, or is missing, is refused and changes nothing."""
    evidence = {"destroyed_by": "Shred-It Ltd", "destroyed_on": TODAY, "method": "shredding",
                **change}
    with pytest.raises(LifecycleError, match=message):
        confirm_destruction(ctx, tasked["P1"], **evidence)
    assert states(ctx)["P1"] == "pending_confirmation"


def test_a_hold_cancels_the_task(ctx, tasked):
    """A hold placed while the task is open moves the case to held; confirming is refused."""
    place_hold(ctx, scope="record:P2", hold_type="police", reason="police request")
    assert states(ctx)["P2"] == "held" and [t.record_id for t in list_tasks(ctx)] == ["P1"]
    with pytest.raises(LifecycleError, match="is held"):
        confirm_destruction(ctx, tasked["P2"], destroyed_by="x", destroyed_on=TODAY,
                            method="shredding")


def test_confirming_a_case_that_is_not_a_task_is_refused(ctx, tasked):
    """Only a case pending confirmation can be confirmed."""
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).where(Disposal.id == tasked["P2"])
                        .values(state="approved"))
    with pytest.raises(LifecycleError, match="only a case pending confirmation"):
        confirm_destruction(ctx, tasked["P2"], destroyed_by="x", destroyed_on=TODAY,
                            method="shredding")
    with pytest.raises(LifecycleError, match="no disposal"):
        confirm_destruction(ctx, 999, destroyed_by="x", destroyed_on=TODAY, method="shredding")


def test_review_action_becomes_a_task_whatever_the_connector(ctx, tmp_path, holding_url):
    """A case whose action is review is never executed automatically: a person gets a task."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    queue_and_approve(ctx)
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).values(action="review"))
        session.execute(update(Record).values(due_action="review"))
    registry = connectors(tmp_path, holding_url)
    assert execute_due(ctx, registry, owner="w", batch_size=5, lease_s=60).pending_confirmation == 1
    registry.close()
    assert states(ctx)["R1"] == "pending_confirmation"
