"""``retentiond run`` disposes of exactly the due, unheld, approved records in a real holding
database and a real folder, on a SQLite and on a PostgreSQL registry."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonProcess
from disposal_support import (
    audit_verifies,
    case_states,
    cli,
    context,
    daemon_config,
    event_counts,
    holding_upns,
    wait_until,
)
from execution_support import holding_database, make_files, make_holding

from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import place_hold

CONTROLLERS = "code,name,email\nLA-01,Synthetic Borough Council,ig@la01.example\n"
# mis: the holding database (pupils + pupil_marks); files: the folder of case files.
RECORDS = """\
record_id,category,controller,system,locator,subject_ref,date_of_birth,opened_on,closed_on
P-DUE-1,education.pupil_record,LA-01,mis,U1,S-1,2000-01-01,,
P-DUE-2,education.pupil_record,LA-01,mis,U2,S-2,2000-01-01,,
P-HOLD-EARLY,education.pupil_record,LA-01,mis,U3,S-3,2000-01-01,,
P-HOLD-LATE,education.pupil_record,LA-01,mis,U4,S-4,2000-01-01,,
P-NOT-DUE,education.pupil_record,LA-01,mis,U5,S-5,2005-06-01,,
P-PENDING,education.pupil_record,LA-01,mis,U6,S-6,2000-01-01,,
CP-TWO,child_protection.case,LA-01,files,cp-1,,,1975-01-01,1980-06-30
CP-ONE,child_protection.case,LA-01,files,cp-2,,,1975-01-01,1980-06-30
CP-OPEN,child_protection.case,LA-01,files,cp-3,,,2019-01-01,
SG-DUE,safeguarding.referral,LA-01,files,sg-1,,,2010-01-04,
SG-NOT-DUE,safeguarding.referral,LA-01,files,sg-2,,,2024-01-04,
"""
GONE_ROWS = {"U1", "U2"}
GONE_FILES = {"cp-1", "sg-1"}
EXECUTED = {"P-DUE-1", "P-DUE-2", "CP-TWO", "SG-DUE"}


@pytest.fixture
def holding_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A holding database on the registry's backend."""
    yield from holding_database(database_url, tmp_path)


def test_daemon_disposes_of_exactly_the_due_unheld_approved_records(
        database_url: str, holding_url: str, tmp_path: Path) -> None:
    """Only approved, due, unheld records leave the holding DB and folder; audit verifies."""
    rows = {f"U{i}" for i in range(1, 7)} | {"U-STRAY"}
    make_holding(holding_url, sorted(rows))
    files = tmp_path / "files"
    folders = {"cp-1", "cp-2", "cp-3", "sg-1", "sg-2", "stray"}
    make_files(files, sorted(folders))
    config = daemon_config(tmp_path / "retentiond.toml", database_url, holding_url, files)
    one = cli(tmp_path, database_url, config, actor="officer.one")
    two = cli(tmp_path, database_url, config, actor="officer.two")

    (tmp_path / "controllers.csv").write_text(CONTROLLERS)
    (tmp_path / "records.csv").write_text(RECORDS)
    ctx = context(database_url)  # set-up in process; the reviews go through the command line
    import_controllers(ctx, tmp_path / "controllers.csv")
    import_records(ctx, tmp_path / "records.csv")
    place_hold(ctx, scope="record:P-HOLD-EARLY", hold_type="legal", reason="litigation")
    evaluate(ctx, ctx.clock.today())
    listed = one.run("disposals", "list", "--format", "json").json()
    ids = {d["record_id"]: str(d["id"]) for d in listed}
    assert set(ids) == {"P-DUE-1", "P-DUE-2", "P-HOLD-LATE", "P-PENDING", "CP-TWO", "CP-ONE",
                        "SG-DUE"}

    one.run("disposals", "approve", ids["P-DUE-1"], ids["P-DUE-2"], ids["P-HOLD-LATE"],
            ids["CP-TWO"], ids["CP-ONE"], ids["SG-DUE"], "--reason", "retention over; checked")
    both = two.run("disposals", "approve", ids["CP-TWO"], "--reason", "second review",
                   "--format", "json").json()
    assert [(d["state"], d["approved_by"]) for d in both] == [
        ("approved", ["officer.one", "officer.two"])]
    one.run("holds", "place", "--scope", "subject:S-4", "--type", "subject_access",
            "--reason", "SAR received after approval")
    before = case_states(database_url)
    assert {k for k, s in before.items() if s == "approved"} == EXECUTED

    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        wait_until(lambda: sum(s == "executed" for s in case_states(database_url).values())
                   >= len(EXECUTED), timeout=45, what="the approved cases to be executed")
        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0, daemon.stderr_text()
    finally:
        daemon.stop()

    pupils, marks = holding_upns(holding_url)
    assert pupils == rows - GONE_ROWS and marks == rows - GONE_ROWS
    assert {p.name for p in files.iterdir()} == folders - GONE_FILES
    assert all(len(list((files / f).iterdir())) == 2 for f in folders - GONE_FILES)

    after = case_states(database_url)
    assert {k for k, s in after.items() if s == "executed"} == EXECUTED
    assert after["P-HOLD-LATE"] == "held"
    assert (after["P-PENDING"], after["CP-ONE"]) == ("pending_review", "pending_review")
    assert not {"P-HOLD-EARLY", "P-NOT-DUE", "CP-OPEN", "SG-NOT-DUE"} & set(after)
    executed = event_counts(database_url, "DisposalExecuted")
    assert sorted(executed.values()) == [1] * len(EXECUTED)
    assert set(executed) == {int(ids[k]) for k in EXECUTED}
    assert audit_verifies(tmp_path, database_url).startswith("audit trail intact")
