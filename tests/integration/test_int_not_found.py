"""Data that was never there (issue 10, class 2; DESIGN.md section 4): not found on a first
attempt is a finding for a person, never "deleted"; a person confirms what became of it in
their own words (which the certificate quotes) or sends the case back; and the holding system
is asked before review, so nobody approves the disposal of data that is not there. Real
folders and SQLite holding databases, both registry backends."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
from cert_support import make_keys, signer_for
from execution_support import (
    DUE_DOB,
    connectors,
    events,
    holding_upns,
    make_files,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from sqlalchemy import select

from retentiond.certificates import issue_certificates
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.explain import explain
from retentiond.lifecycle.presence import check_presence
from retentiond.lifecycle.review import approve, list_disposals
from retentiond.lifecycle.tasks import (
    confirm_destruction,
    confirm_not_found,
    list_tasks,
    send_back,
)
from retentiond.registry.models import Certificate, DisposalExecution

EVIDENCE = "destroyed earlier by the school's MIS clean-up of March 2024 (its log ref 118)"


@pytest.fixture
def estate(ctx, tmp_path):
    """Two file records (one folder there, one never there) and two SQL rows (one there,
    one never there), all due and approved."""
    holding = f"sqlite:///{tmp_path / 'holding.db'}"
    make_holding(holding, ["U1"])
    make_files(tmp_path / "files", ["case-a"])
    seed(ctx, tmp_path, [
        {"record_id": "F-THERE", "system": "files", "locator": "case-a", "date_of_birth": DUE_DOB},
        {"record_id": "F-NEVER", "system": "files", "locator": "case-typo",
         "date_of_birth": DUE_DOB},
        {"record_id": "S-THERE", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "S-NEVER", "system": "mis", "locator": "U9", "date_of_birth": DUE_DOB},
    ])
    registry = connectors(tmp_path, holding)
    yield ctx, registry, holding
    registry.close()


def _execute(ctx, registry):
    return execute_due(ctx, registry, owner="t", batch_size=10, lease_s=60)


def _row(ctx, disposal_id) -> DisposalExecution:
    with ctx.sessions() as session:
        return session.scalars(select(DisposalExecution)
                               .where(DisposalExecution.disposal_id == disposal_id)).one()


def test_never_there_on_the_first_attempt_goes_to_a_person(estate, tmp_path):
    """A folder and a row that never existed are not executed "already absent": each case
    waits in pending_confirmation as a not_found task, with the reason; nothing of theirs is
    certified; the present ones are deleted with the outcome deleted."""
    ctx, registry, _holding = estate
    cases = queue_and_approve(ctx)
    result = _execute(ctx, registry)
    assert states(ctx) == {"F-THERE": "executed", "F-NEVER": "pending_confirmation",
                           "S-THERE": "executed", "S-NEVER": "pending_confirmation"}
    assert (result.executed, result.not_found) == (2, 2)
    tasks = {t.record_id: t for t in list_tasks(ctx)}
    assert {k: (t.kind, t.reason) for k, t in tasks.items()} == {
        "F-NEVER": ("not_found", "not found in files on the first attempt"),
        "S-NEVER": ("not_found", "not found in mis on the first attempt")}
    assert events(ctx, cases["S-NEVER"])[-1] == "DisposalNotFound"
    assert _row(ctx, cases["S-THERE"]).outcome == "deleted"
    assert _row(ctx, cases["S-NEVER"]).executed_at is None
    issued = issue_certificates(ctx, signer_for(make_keys(tmp_path)), batch="run")
    assert sum(c.records for c in issued) == 2
    with ctx.sessions() as session:
        doc = session.scalars(select(Certificate.document)).one()
    assert {r["record"]: r["outcome"] for r in doc["records"]} == {"F-THERE": "deleted",
                                                                   "S-THERE": "deleted"}
    # Running again changes nothing: the finding waits for its person.
    assert _execute(ctx, registry).claimed == 0


def test_a_person_confirms_in_their_words_and_the_certificate_says_so(estate, tmp_path):
    """confirm_not_found: invisible or too-short evidence is refused; the manual-task
    confirmation is refused; data that is there now is refused; then the case is executed as
    confirmed_not_found, the certificate (JSON and PDF) quotes the words and never says
    deleted for it."""
    ctx, registry, _holding = estate
    cases = queue_and_approve(ctx)
    _execute(ctx, registry)
    did = cases["F-NEVER"]
    for bad in ("\u200b" * 30, "  ", "ok", "destroyed\x07 earlier by someone"):
        with pytest.raises(LifecycleError):
            confirm_not_found(ctx, did, evidence=bad, connectors=registry)
    with pytest.raises(LifecycleError, match="not found"):
        confirm_destruction(ctx, did, destroyed_by="Shred-It Ltd", destroyed_on=ctx.clock.today(),
                            method="cross-cut shredding")
    (tmp_path / "files" / "case-typo").mkdir()
    with pytest.raises(LifecycleError, match="in files now"):
        confirm_not_found(ctx, did, evidence=EVIDENCE, connectors=registry)
    (tmp_path / "files" / "case-typo").rmdir()
    officer = dataclasses.replace(ctx, actor="officer.two")
    view = confirm_not_found(officer, did, evidence=EVIDENCE, connectors=registry)
    assert view.state == "executed"
    assert confirm_not_found(officer, did, evidence=EVIDENCE, connectors=registry).state == \
        "executed"  # the same words again: nothing changes
    row = _row(ctx, did)
    assert (row.outcome, row.outcome_note, row.confirmed_by) == \
        ("confirmed_not_found", EVIDENCE, "officer.two")
    assert "again when officer.two confirmed it" in row.verification
    issue_certificates(ctx, signer_for(make_keys(tmp_path)), batch="run")
    with ctx.sessions() as session:
        cert = session.scalars(select(Certificate)).one()
    item = next(r for r in cert.document["records"] if r["record"] == "F-NEVER")
    assert (item["outcome"], item["outcome_note"], item["action"]) == \
        ("confirmed_not_found", EVIDENCE, "confirmed_not_found")
    assert "deleted" not in json.dumps(item)
    pdf = tmp_path / "cert.pdf"
    pdf.write_bytes(cert.pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "MIS clean-up of March 2024" in " ".join(text.split())


def test_send_back_voids_approvals_and_a_corrected_locator_is_deleted(estate, tmp_path):
    """send_back: the case returns to pending_review with its approvals voided; once the
    locator is corrected (records import) and the case approved again, it is deleted."""
    ctx, registry, holding = estate
    cases = queue_and_approve(ctx)
    _execute(ctx, registry)
    with pytest.raises(LifecycleError):
        send_back(ctx, cases["S-THERE"], reason="not a finding")
    view = send_back(ctx, cases["S-NEVER"], reason="locator mistyped: corrected to U2")
    assert view.state == "pending_review"
    assert [d.approved_by for d in list_disposals(ctx) if d.id == cases["S-NEVER"]] == [()]
    make_holding_row(holding, "U2")
    seed(ctx, tmp_path, [{"record_id": "S-NEVER", "system": "mis", "locator": "U2",
                          "date_of_birth": DUE_DOB}])
    approve(ctx, [cases["S-NEVER"]], reason="locator corrected")
    assert _execute(ctx, registry).executed == 1
    assert states(ctx)["S-NEVER"] == "executed"
    assert "U2" not in holding_upns(holding)[0]


def make_holding_row(url: str, upn: str) -> None:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pupils VALUES (:u, 'Pupil', '2000-01-01', '')"), {"u": upn})
    engine.dispose()


def test_presence_is_checked_before_review_and_approval_must_acknowledge(estate, tmp_path):
    """check_presence finds what is not there (batched per system); the queue and the record
    page say so; approving it is refused unless acknowledged (recorded); a corrected locator
    drops the finding."""
    ctx, registry, _holding = estate
    cases = queue_and_approve(ctx, keys=[])
    result = check_presence(ctx, registry)
    assert (result.checked, result.found, result.not_found) == (4, 2, 2)
    views = {d.record_id: d.not_found_in for d in list_disposals(ctx)}
    assert views == {"F-THERE": None, "F-NEVER": "files", "S-THERE": None, "S-NEVER": "mis"}
    doc = explain(ctx, "S-NEVER", as_of=ctx.clock.today())
    assert doc["holding_check"]["found"] is False and doc["holding_check"]["system"] == "mis"
    with pytest.raises(LifecycleError, match="not found in mis when last checked"):
        approve(ctx, [cases["S-THERE"], cases["S-NEVER"]], reason="due")
    assert {d.state for d in list_disposals(ctx)} == {"pending_review"}  # nothing applied
    approve(ctx, [cases["S-NEVER"]], reason="due; checked with the MIS team",
            acknowledge_not_found=True)
    assert events(ctx, cases["S-NEVER"])[-1] == "DisposalApproved"
    assert check_presence(ctx, registry).checked == 0  # fresh findings are not asked again
    seed(ctx, tmp_path, [{"record_id": "F-NEVER", "system": "files", "locator": "case-a",
                          "date_of_birth": DUE_DOB}])
    assert {d.record_id: d.not_found_in for d in list_disposals(ctx)}["F-NEVER"] is None
    approve(ctx, [cases["F-NEVER"]], reason="due")
