"""The execution pipeline on both backends, against a real holding database and a real folder."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import structlog
from execution_support import (
    DUE_DOB,
    NOT_DUE_DOB,
    connectors,
    events,
    holding_database,
    holding_upns,
    make_files,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from sqlalchemy import select, update

from retentiond.connectors import ConnectorRegistry, TransientConnectorError
from retentiond.lifecycle.execute import execute_due, reap_leases
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.review import list_disposals
from retentiond.registry.models import AuditEvent, Disposal, DisposalExecution, Record

OWNER = "test-worker"


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


def _run(ctx, registry, **kw):
    kw.setdefault("batch_size", 3)
    kw.setdefault("lease_s", 60)
    return execute_due(ctx, registry, owner=OWNER, **kw)


def test_exactly_approved_due_unheld_records_are_removed(ctx, tmp_path, holding_url):
    """Only the approved, due, unheld records leave the holding database and the folder."""
    make_holding(holding_url, ["U1", "U2", "U3", "U4", "U5"])
    make_files(tmp_path / "files", ["case-a", "case-b", "case-c"])
    seed(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": DUE_DOB},
        {"record_id": "R3", "system": "mis", "locator": "U3", "date_of_birth": DUE_DOB},
        {"record_id": "R4", "system": "mis", "locator": "U4", "date_of_birth": NOT_DUE_DOB},
        {"record_id": "R5", "system": "mis", "locator": "U5", "date_of_birth": DUE_DOB},
        {"record_id": "F1", "system": "files", "locator": "case-a", "date_of_birth": DUE_DOB},
        {"record_id": "F2", "system": "files", "locator": "case-b", "date_of_birth": DUE_DOB},
    ])
    place_hold(ctx, scope="record:R2", hold_type="legal", reason="litigation")
    queue_and_approve(ctx, ["R1", "R3", "F1"])  # R5 and F2 are left pending review
    registry = connectors(tmp_path, holding_url)
    result = _run(ctx, registry)
    registry.close()
    assert (result.claimed, result.executed, result.failed) == (3, 3, 0)
    pupils, marks = holding_upns(holding_url)
    assert pupils == {"U2", "U4", "U5"} and marks == {"U2", "U4", "U5"}
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == ["case-b", "case-c"]
    s = states(ctx)
    assert (s["R1"], s["R3"], s["F1"]) == ("executed",) * 3
    assert (s["R5"], s["F2"]) == ("pending_review", "pending_review")
    assert "R2" not in s and "R4" not in s  # held, and not due: never queued


def test_executed_event_and_row_say_how_it_was_done(ctx, tmp_path, holding_url):
    """DisposalExecuted names system, connector, action and verification, in one transaction
    with the state change and the execution row."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    _run(ctx, registry)
    registry.close()
    did = cases["R1"]
    assert events(ctx, did)[-2:] == ["DisposalClaimed", "DisposalExecuted"]
    with ctx.sessions() as session:
        ev = session.scalars(select(AuditEvent).where(AuditEvent.kind == "DisposalExecuted")).one()
        row = session.scalars(select(DisposalExecution)).one()
        case = session.get(Disposal, did)
    assert ev.data["system"] == "mis" and ev.data["connector"] == "mis"
    assert ev.data["action"] == "delete"
    assert "exists() is false" in ev.data["verification"]
    assert "3 rows" in ev.data["method"] and "U1" not in ev.data["method"]
    assert row.executed_at is not None and row.connector_kind == "sql"
    assert (case.state, case.lease_owner, case.lease_until, case.attempts) == (
        "executed", None, None, 1)


def test_hold_placed_after_approval_stops_execution_at_claim(ctx, tmp_path, holding_url):
    """A hold that reaches an approved case is honoured: nothing is deleted."""
    make_holding(holding_url, ["U1", "U2"])
    seed(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": DUE_DOB},
    ])
    cases = queue_and_approve(ctx)
    # Place the hold behind the hold service's back, as a racing transaction would leave it:
    # the case is still 'approved' when the executor claims it.
    place_hold(ctx, scope="subject:S-R1", hold_type="subject_access", reason="SAR received")
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).where(Disposal.id == cases["R1"])
                        .values(state="approved"))
    registry = connectors(tmp_path, holding_url)
    result = _run(ctx, registry)
    registry.close()
    assert (result.held, result.executed) == (1, 1)
    assert holding_upns(holding_url)[0] == {"U1"}
    assert states(ctx)["R1"] == "held"
    assert events(ctx, cases["R1"])[-1] == "DisposalHeld"


@pytest.mark.parametrize("change", [
    {"due_on": dt.date(2031, 1, 1)},
    {"due_action": "return"},
    {"approvals_required": 2},
], ids=["due-date-moved", "action-changed", "more-approvers"])
def test_record_whose_decision_changed_is_not_executed(ctx, tmp_path, holding_url, change):
    """A case whose record's due date, action or approvers changed under it (a recompute
    racing the claim) is withdrawn at claim, not executed."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    with ctx.sessions.begin() as session:
        session.execute(update(Record).where(Record.record_key == "R1").values(**change))
    registry = connectors(tmp_path, holding_url)
    result = _run(ctx, registry)
    registry.close()
    assert (result.withdrawn, result.executed) == (1, 0)
    assert holding_upns(holding_url)[0] == {"U1"}
    assert states(ctx)["R1"] == "withdrawn"
    assert events(ctx, cases["R1"])[-1] == "DisposalWithdrawn"


class Flaky:
    """Wraps a connector; its first ``failures`` deletes raise a transient error."""

    def __init__(self, inner, failures):
        self.inner, self.failures, self.calls = inner, failures, 0
        self.name, self.kind = inner.name, inner.kind

    def delete(self, ref, key):
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientConnectorError("mis: database unavailable (OperationalError)")
        return self.inner.delete(ref, key)

    def exists(self, ref):
        return self.inner.exists(ref)

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


def test_transient_errors_retry_with_backoff_then_succeed(ctx, clock, tmp_path, holding_url):
    """A transient error schedules a retry after a growing backoff; then the delete succeeds."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    flaky = Flaky(real.get("mis"), failures=2)
    registry = ConnectorRegistry({"mis": flaky}, {"mis": "mis"})
    assert _run(ctx, registry, backoff_s=10).retry_scheduled == 1
    with ctx.sessions() as session:
        case = session.get(Disposal, cases["R1"])
        assert case.state == "approved" and case.next_attempt_at == clock.now() + dt.timedelta(seconds=10)
        assert "database unavailable" in case.last_error
    assert _run(ctx, registry, backoff_s=10).claimed == 0  # still backing off
    clock.instant += dt.timedelta(seconds=11)
    assert _run(ctx, registry, backoff_s=10).retry_scheduled == 1
    with ctx.sessions() as session:
        assert session.get(Disposal, cases["R1"]).next_attempt_at == clock.now() + dt.timedelta(seconds=20)
    clock.instant += dt.timedelta(seconds=21)
    assert _run(ctx, registry, backoff_s=10).executed == 1
    real.close()
    assert holding_upns(holding_url)[0] == set()
    kinds = events(ctx, cases["R1"])
    assert kinds.count("DisposalRetryScheduled") == 2 and kinds[-1] == "DisposalExecuted"
    with ctx.sessions() as session:
        case = session.get(Disposal, cases["R1"])
        assert (case.state, case.attempts, case.last_error) == ("executed", 3, None)


def test_too_many_transient_errors_end_failed(ctx, tmp_path, holding_url):
    """After max_attempts transient errors the case is failed, visible in disposals list."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    registry = ConnectorRegistry({"mis": Flaky(real.get("mis"), failures=99)}, {"mis": "mis"})
    assert _run(ctx, registry, backoff_s=0, max_attempts=1).failed == 1
    real.close()
    [case] = list_disposals(ctx, state="failed")
    assert case.record_id == "R1"
    assert holding_upns(holding_url)[0] == {"U1"}


def test_permanent_error_fails_with_audit_and_log(ctx, tmp_path, holding_url):
    """A refused locator fails at once: state failed, last_error, DisposalFailed, a log line
    without the locator."""
    make_holding(holding_url, [])
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("not ours")
    seed(ctx, tmp_path, [{"record_id": "F1", "system": "files",
                          "locator": "../outside-secret.txt", "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    with structlog.testing.capture_logs() as logs:
        result = _run(ctx, registry)
    registry.close()
    assert result.failed == 1 and outside.exists()
    with ctx.sessions() as session:
        case = session.get(Disposal, cases["F1"])
    assert case.state == "failed" and "locator refused" in case.last_error
    assert events(ctx, cases["F1"])[-1] == "DisposalFailed"
    [line] = [e for e in logs if e["event"] == "disposal_failed"]
    assert line["disposal_id"] == cases["F1"] and line["log_level"] == "error"
    assert "outside-secret" not in repr(line)


def test_unsupported_action_fails_with_a_clear_error(ctx, tmp_path, holding_url):
    """An anonymise case on a connector that cannot anonymise ends failed, saying so."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).values(action="anonymise"))
        session.execute(update(Record).values(due_action="anonymise"))
    registry = connectors(tmp_path, holding_url)
    assert _run(ctx, registry).failed == 1
    registry.close()
    with ctx.sessions() as session:
        assert "cannot anonymise" in session.get(Disposal, cases["R1"]).last_error
    assert holding_upns(holding_url)[0] == {"U1"}


class Crash(BaseException):
    """Stands for the process dying (SIGKILL) mid-way."""


class CrashAfterDelete(Flaky):
    """Deletes for real, then 'dies' before the executor can record it (once)."""

    def delete(self, ref, key):
        self.calls += 1
        done = self.inner.delete(ref, key)
        if self.calls == 1:
            raise Crash()
        return done


def test_expired_lease_is_reaped_and_work_finished_once(ctx, clock, tmp_path, holding_url):
    """A worker dying after the delete leaves the case executing; once its lease expires it
    is reaped, retried (already absent is success) and executed exactly once."""
    make_holding(holding_url, ["U1", "U2"])
    seed(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": DUE_DOB},
    ])
    cases = queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    crashing = CrashAfterDelete(real.get("mis"), failures=0)
    registry = ConnectorRegistry({"mis": crashing}, {"mis": "mis"})
    with pytest.raises(Crash):
        _run(ctx, registry, lease_s=300)
    assert states(ctx)["R1"] == "executing" and states(ctx)["R2"] == "executing"
    assert reap_leases(ctx) == 0  # not expired yet
    assert _run(ctx, registry).claimed == 0  # leased: nobody else takes it
    clock.instant += dt.timedelta(seconds=301)
    assert reap_leases(ctx) == 2
    assert events(ctx, cases["R1"])[-1] == "DisposalLeaseExpired"
    result = _run(ctx, registry)
    real.close()
    assert result.executed == 2
    assert holding_upns(holding_url)[0] == set()
    for key in ("R1", "R2"):
        assert events(ctx, cases[key]).count("DisposalExecuted") == 1
    with ctx.sessions() as session:
        assert session.get(Disposal, cases["R1"]).attempts == 2
        assert "already absent" in session.scalars(
            select(DisposalExecution.method)
            .where(DisposalExecution.disposal_id == cases["R1"])).one()


def test_reaping_gives_up_after_max_attempts(ctx, clock, tmp_path, holding_url):
    """A case whose worker keeps dying ends failed instead of looping for ever."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    registry = ConnectorRegistry({"mis": CrashAfterDelete(real.get("mis"), failures=0)},
                                 {"mis": "mis"})
    with pytest.raises(Crash):
        _run(ctx, registry)
    real.close()
    clock.instant += dt.timedelta(seconds=61)
    assert reap_leases(ctx, max_attempts=1) == 1
    assert states(ctx)["R1"] == "failed"


def test_stop_finishes_the_case_in_hand_and_releases_the_rest(ctx, tmp_path, holding_url):
    """With stop set during a call, that case completes and the rest of the batch goes back."""
    make_holding(holding_url, ["U1", "U2", "U3"])
    seed(ctx, tmp_path, [
        {"record_id": f"R{i}", "system": "mis", "locator": f"U{i}", "date_of_birth": DUE_DOB}
        for i in (1, 2, 3)
    ])
    cases = queue_and_approve(ctx)
    stop = threading.Event()
    real = connectors(tmp_path, holding_url)

    class StopDuring(Flaky):
        def delete(self, ref, key):
            stop.set()
            return self.inner.delete(ref, key)

    registry = ConnectorRegistry({"mis": StopDuring(real.get("mis"), 0)}, {"mis": "mis"})
    result = _run(ctx, registry, stop=stop)
    real.close()
    assert (result.executed, result.released, result.stopped) == (1, 2, True)
    s = states(ctx)
    assert (s["R1"], s["R2"], s["R3"]) == ("executed", "approved", "approved")
    with ctx.sessions() as session:
        assert session.get(Disposal, cases["R2"]).attempts == 0
