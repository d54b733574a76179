"""Audit events, aware datetimes and logs on real SQLite and PostgreSQL (DESIGN.md section 6):
every state change writes its event in the same transaction, a refusal writes none, naive
datetimes are refused, and logs carry no personal data."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from collections import Counter

import pytest
from conftest import TODAY
from int_support import (
    as_actor,
    audit_counts,
    cp_case,
    live_case,
    load_records,
    pupil,
    referral,
    seed_controllers,
    snapshot,
    write_records,
)
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from retentiond.ingest import ImportRefused
from retentiond.ingest.records import import_records
from retentiond.lifecycle import agreements, holds, review
from retentiond.lifecycle import evaluate as evaluate_mod
from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve, defer, reject
from retentiond.logs import configure_logging, get_logger
from retentiond.notify.termination import termination_notices
from retentiond.registry.models import AuditEvent, Controller


@pytest.fixture
def queue(ctx, tmp_path):
    """Controllers, an agreement, and queued cases of every default approval count."""
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-01", title="Synthetic ISA")
    load_records(ctx, tmp_path, [
        referral("R-1", "2015-01-01"), referral("R-2", "2015-02-01"),
        referral("R-3", "2015-03-01"), cp_case("R-CP", "1980-01-01"),
        pupil("R-ISA", "2015-01-01", agreement="ISA-01"),
    ])
    evaluate(ctx, TODAY)
    return ctx


def test_every_state_change_writes_its_event(queue):
    """A whole review session writes exactly one event per state change, of the right kind,
    with actor, aware time and policy version."""
    two = as_actor(queue, "officer.two")
    approve(queue, [live_case(queue, "R-1").id], reason="ok")
    defer(queue, [live_case(queue, "R-2").id], reason="later", until=dt.date(2027, 1, 1))
    reject(queue, [live_case(queue, "R-3").id], reason="keep")
    cp = live_case(queue, "R-CP").id
    approve(queue, [cp], reason="first")
    hold = place_hold(queue, scope="record:R-CP", hold_type="legal", reason="claim")
    lift_hold(queue, hold.id, reason="settled")
    approve(two, [cp], reason="second")
    terminate_agreement(queue, "ISA-01", on=dt.date(2026, 12, 1),
                        notices=termination_notices(queue, issuer="Synthetic Borough Council"))
    assert audit_counts(queue) == Counter({
        "ControllersImported": 1, "AgreementAdded": 1, "RecordsImported": 1,
        "DisposalQueued": 4, "DisposalApproved": 1, "DisposalDeferred": 1,
        "DisposalRejected": 1, "DisposalApprovalRecorded": 2, "HoldPlaced": 1,
        "DisposalHeld": 1, "HoldLifted": 1, "DisposalReturnedToReview": 1,
        "AgreementTerminated": 1,
        # the controllers are told at termination what comes back (clause 13.1)
        "NotificationsQueued": 1,
    })
    with queue.sessions() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert all(e.actor and e.occurred_at.tzinfo is not None for e in events)
    assert all(e.policy_version == queue.policy.version for e in events
               if e.entity == "disposal")
    by_kind = {e.kind: e for e in events}
    assert by_kind["DisposalDeferred"].reason == "later"
    assert by_kind["DisposalDeferred"].data == {"until": "2027-01-01"}
    assert [e.actor for e in events if e.kind == "DisposalApprovalRecorded"] == [
        "officer.one", "officer.two"]


def _boom(*_args, **_kwargs):
    raise RuntimeError("audit store unavailable")


#: (module whose record_event is broken, the operation)
OPERATIONS = [
    pytest.param(review, lambda c: approve(c, [live_case(c, "R-1").id], reason="ok"),
                 id="approve"),
    pytest.param(review, lambda c: defer(c, [live_case(c, "R-1").id], reason="later",
                                         until=dt.date(2027, 1, 1)), id="defer"),
    pytest.param(review, lambda c: reject(c, [live_case(c, "R-1").id], reason="keep"),
                 id="reject"),
    pytest.param(holds, lambda c: place_hold(c, scope="record:R-1", hold_type="legal",
                                             reason="claim"), id="place-hold"),
    pytest.param(agreements, lambda c: terminate_agreement(c, "ISA-01", on=dt.date(2026, 12, 1)),
                 id="terminate-agreement"),
    pytest.param(agreements, lambda c: add_agreement(c, code="ISA-02", title="Another"),
                 id="add-agreement"),
]


@pytest.mark.parametrize(("module", "operation"), OPERATIONS)
def test_state_change_rolls_back_with_its_event(queue, monkeypatch, module, operation):
    """If an operation's audit event cannot be written, its state change is not kept either:
    both are in one transaction."""
    before = snapshot(queue)
    monkeypatch.setattr(module, "record_event", _boom)
    with pytest.raises(RuntimeError, match="audit store unavailable"):
        operation(queue)
    assert snapshot(queue) == before


def test_import_rolls_back_with_its_event(queue, tmp_path, monkeypatch):
    """A records import whose audit event cannot be written applies nothing."""
    from retentiond.ingest import records

    before = snapshot(queue)
    monkeypatch.setattr(records, "record_event", _boom)
    with pytest.raises(RuntimeError):
        load_records(queue, tmp_path, [referral("R-NEW", "2015-01-01")])
    assert snapshot(queue) == before


def test_evaluation_rolls_back_with_its_events(ctx, tmp_path, monkeypatch):
    """An evaluation whose queue events cannot be written queues nothing."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [referral("R-1", "2015-01-01")])
    before = snapshot(ctx)
    monkeypatch.setattr(evaluate_mod, "json_object", _boom)
    with pytest.raises(RuntimeError):
        evaluate(ctx, TODAY)
    after = snapshot(ctx)
    assert after["disposals"] == before["disposals"] == []
    assert after["audit_events"] == before["audit_events"]


def test_refused_operations_write_no_events(queue, tmp_path):
    """Refused imports, approvals, holds and deferrals write no audit event."""
    counts = audit_counts(queue)
    cid = live_case(queue, "R-1").id
    bad = write_records(tmp_path / "bad.csv", [referral("R-9", "2015-02-30")])
    refusals = [
        (ImportRefused, lambda: import_records(queue, bad)),
        (Exception, lambda: approve(queue, [cid, 999], reason="ok")),
        (Exception, lambda: place_hold(queue, scope="record:R-NOPE", hold_type="legal",
                                       reason="x")),
        (Exception, lambda: defer(queue, [cid], reason="x", until=TODAY)),
        (Exception, lambda: lift_hold(queue, 999, reason="x")),
        (Exception, lambda: terminate_agreement(queue, "ISA-99", on=TODAY)),
    ]
    for exc, call in refusals:
        with pytest.raises(exc):
            call()
    assert audit_counts(queue) == counts


@pytest.mark.parametrize("naive", [dt.datetime(2026, 11, 22, 12, 0),
                                   dt.datetime(2026, 11, 22)], ids=["noon", "midnight"])
def test_naive_datetime_refused(ctx, naive):
    """The UtcDateTime column refuses a naive datetime on both backends."""
    with pytest.raises(StatementError, match="naive datetime refused"), ctx.sessions.begin() as s:
        s.add(Controller(code="SCH-N", name="Naive", email="n@n.example", created_at=naive,
                         updated_at=naive))
    with ctx.sessions() as s:
        assert s.scalars(select(Controller)).all() == []


def test_aware_datetime_stored_as_utc(ctx):
    """An aware datetime in another zone is stored and read back as the same instant in UTC."""
    from zoneinfo import ZoneInfo

    summer = dt.datetime(2026, 7, 1, 13, 30, tzinfo=ZoneInfo("Europe/London"))
    with ctx.sessions.begin() as s:
        s.add(Controller(code="SCH-A", name="Aware", email="a@a.example", created_at=summer,
                         updated_at=summer))
    with ctx.sessions() as s:
        got = s.scalars(select(Controller.created_at)).one()
    assert got == summer and got.utcoffset() == dt.timedelta(0)
    assert (got.hour, got.tzinfo) == (12, dt.UTC)


# --- logs -----------------------------------------------------------------------------------

SECRET_REF, SECRET_DOB, SECRET_DOD = "S-SECRET-7731", "2003-04-05", "2011-08-09"


@pytest.fixture
def logs(capsys):
    """JSON log lines written to stderr while the test runs (the real configuration)."""
    configure_logging("debug", "json", b"test-key")
    capsys.readouterr()
    yield lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    configure_logging()


def test_logs_carry_no_personal_data(ctx, tmp_path, logs):
    """Import, evaluation and holds log JSON lines with counts, never a subject reference or a
    date of birth or death in clear (a refused import logs nothing in clear either)."""
    seed_controllers(ctx, tmp_path)
    row = {"record_id": "R-LAC", "category": "looked_after.case_record", "controller": "LA-01",
           "subject_ref": SECRET_REF, "date_of_birth": SECRET_DOB, "date_of_death": SECRET_DOD}
    load_records(ctx, tmp_path, [row])
    with pytest.raises(ImportRefused):
        load_records(ctx, tmp_path, [{**row, "date_of_birth": "2003-02-29"}])
    evaluate(ctx, TODAY)
    hold = place_hold(ctx, scope=f"subject:{SECRET_REF}", hold_type="subject_access",
                      reason="SAR")
    lift_hold(ctx, hold.id, reason="answered")
    lines = logs()
    assert {line["event"] for line in lines} >= {
        "import_finished", "evaluation_finished", "hold_placed", "hold_lifted"}
    text = json.dumps(lines)
    for secret in (SECRET_REF, SECRET_DOB, SECRET_DOD, "2003-02-29"):
        assert secret not in text


def test_personal_keys_are_pseudonymised(logs):
    """A log call that names personal data gets keyed, stable pseudonyms in its place."""
    log = get_logger("test")
    log.info("looked_up", subject_ref=SECRET_REF, date_of_birth=SECRET_DOB, count=3)
    log.info("looked_up", subject_ref=SECRET_REF)
    first, second = logs()
    assert first["subject_ref"].startswith("p:") and first["subject_ref"] != SECRET_REF
    assert first["date_of_birth"].startswith("p:") and first["count"] == 3
    assert first["subject_ref"] == second["subject_ref"]


def test_logs_follow_a_replaced_stderr(monkeypatch):
    """Logging configured on one stderr keeps working after stderr is replaced and the old
    stream closed (the failure would otherwise surface in whatever operation logs next)."""
    old, new = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    configure_logging()
    monkeypatch.setattr(sys, "stderr", new)
    old.close()
    get_logger("test").info("still_here")
    assert json.loads(new.getvalue())["event"] == "still_here"
    configure_logging()

