"""The whole disposal lifecycle from a terminal: the ``retentiond`` command as a subprocess
against a fresh registry on SQLite and on PostgreSQL (docs/cli.md is the contract).

The command reads the real clock, so the data sits far from any "today": referrals reported
in 2010 (long due), a pupil born in 2020 (due in 2045), an open child-protection case (never).
"""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli, assert_refused, write

#: JSON keys are a contract (docs/cli.md): exact sets, so an added or lost key is noticed.
EVALUATE_KEYS = {"evaluation_id", "as_of", "policy_version", "queued", "auto_approved",
                 "holds_expired", "recomputed", "due_dates_changed", "cases_withdrawn"}
DISPOSAL_KEYS = {"id", "record_id", "category", "controller", "state", "due_on", "action",
                 "rule", "policy_version", "approvals_required", "approved_by", "reason",
                 "updated_at", "not_found_in", "last_error", "attempts", "stage",
                 "stage_group", "stages", "cooling_off_days", "cooling_until"}
HOLD_KEYS = {"id", "scope", "type", "reason", "placed_by", "placed_at", "until", "lifted_at",
             "lifted_by", "lift_reason", "active", "records_covered", "covers", "criteria"}
EXPLAIN_KEYS = {"record_id", "category", "controller", "agreement", "system", "locator",
                "holding_check", "source", "gone_at_source_at", "as_of",
                "policy_version", "stored_policy_version", "facts", "rules", "due_on", "is_due",
                "action", "rule", "citation", "approvals_required", "auto_approve",
                "needs_attention", "deferred_until", "holds", "state", "disposal", "history"}
EXPLAIN_RULE_KEYS = {"rule", "citation", "status", "applied", "reason", "alternative", "trigger",
                     "trigger_value", "period", "due_on"}
FORECAST_KEYS = {"as_of", "until", "items", "totals"}
FORECAST_ITEM_KEYS = {"record_id", "due_on", "action", "rule", "category", "controller"}
FORECAST_TOTALS_KEYS = {"total", "by_month", "by_category", "by_month_and_category"}
CONTROLLER_KEYS = {"code", "name", "email", "webhook_url"}
AGREEMENT_KEYS = {"code", "title", "status", "notice", "termination_action", "terminated_on",
                  "disposal_due_on"}
SHOW_KEYS = {"version", "packs", "rules", "labels"}
SHOW_PACK_KEYS = {"name", "title", "path", "sha256", "requires_local_signoff", "signed_off_by",
                  "signed_off_on", "signed_off_report_sha256"}
SHOW_RULE_KEYS = {"id", "category", "title", "action", "approvals_required", "auto_approve",
                  "citation", "note", "source_quote", "source_url", "basis", "local_reading",
                  "when", "stages", "cooling_off_days", "alternatives"}
SHOW_ALT_KEYS = {"when", "trigger", "period", "round_to", "after_period_end", "missing_day"}

CONTROLLERS = """code,name,email,webhook_url
SCH-01,Synthetic Primary School One,dpo@sch01.example,
LA-01,Synthetic Borough Council,ig@la01.example,https://hooks.la01.example/retention
"""
RECORDS = """\
record_id,category,controller,system,locator,subject_ref,date_of_birth,opened_on,closed_on,\
flags,agreement
R-1,safeguarding.referral,LA-01,case-files,cf/1,,,2010-01-04,,,
R-2,safeguarding.referral,LA-01,case-files,cf/2,,,2010-02-01,,,
R-3,safeguarding.referral,LA-01,case-files,cf/3,,,2010-03-01,,,
R-HOLD,safeguarding.referral,SCH-01,mis,m/4,,,2011-05-05,,,
R-CP,child_protection.case,LA-01,paper,box/7,,,1975-01-01,1980-06-30,,
R-OPEN,child_protection.case,LA-01,paper,box/8,,,2019-01-01,,,
R-FUT,education.pupil_record,SCH-01,mis,m/9,S-0009,2020-04-04,2024-09-01,,sen,ISA-01
"""
JSONL = '{"record_id": "R-J", "category": "safeguarding.referral", "controller": "SCH-01", ' \
        '"opened_on": "2012-07-07", "flags": ["sen"]}\n'


def _one(result) -> dict:
    (doc,) = result.json()
    return doc


def test_whole_lifecycle_from_a_terminal(tmp_path):
    """From an empty SQLite file: upgrade, import, evaluate, review by two different people,
    defer, reject, hold and lift, explain, forecast and show policies; each command exits 0
    and prints the documented JSON."""
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'var' / 'registry.db'}")
    assert "revision" in cli.run("db", "upgrade").out

    write(tmp_path / "controllers.csv", CONTROLLERS)
    assert "2 created" in cli.run("controllers", "import", "controllers.csv").out
    controllers = cli.run("controllers", "list", "--format", "json").json()
    assert [set(c) for c in controllers] == [CONTROLLER_KEYS] * 2
    cli.run("agreements", "add", "ISA-01", "--title", "Synthetic ISA", "--notice", "3m")
    (agreement,) = cli.run("agreements", "list", "--format", "json").json()
    assert set(agreement) == AGREEMENT_KEYS and agreement["notice"] == "3m"

    write(tmp_path / "records.csv", RECORDS)
    assert "7 created" in cli.run("records", "import", "records.csv").out
    write(tmp_path / "more.jsonl", JSONL)
    assert "1 created" in cli.run("records", "import", "more.jsonl").out

    first = cli.run("evaluate", "--format", "json").json()
    assert set(first) == EVALUATE_KEYS
    assert (first["queued"], first["auto_approved"]) == (6, 0)
    assert cli.run("evaluate", "--format", "json").json()["queued"] == 0

    listed = cli.run("disposals", "list", "--format", "json").json()
    assert all(set(d) == DISPOSAL_KEYS for d in listed)
    assert {d["record_id"] for d in listed} == {"R-1", "R-2", "R-3", "R-HOLD", "R-CP", "R-J"}
    assert {d["state"] for d in listed} == {"pending_review"}
    ids = {d["record_id"]: str(d["id"]) for d in listed}

    ok = _one(cli.run("disposals", "approve", ids["R-1"], "--reason", "reviewed",
                      "--format", "json"))
    assert (ok["state"], ok["approved_by"]) == ("approved", ["officer.one"])

    half = _one(cli.run("disposals", "approve", ids["R-CP"], "--reason", "first review",
                        "--format", "json"))
    assert (half["state"], half["approvals_required"]) == ("pending_review", 2)
    assert_refused(cli.run("disposals", "approve", ids["R-CP"], "--reason", "again",
                           expect=None), "already approved")
    both = _one(cli.run("disposals", "approve", ids["R-CP"], "--reason", "second review",
                        "--format", "json", env=cli.as_actor("officer.two")))
    assert (both["state"], both["approved_by"]) == ("approved", ["officer.one", "officer.two"])

    deferred = _one(cli.run("disposals", "defer", ids["R-2"], "--until", "2099-01-01",
                            "--reason", "case review pending", "--format", "json"))
    assert (deferred["state"], deferred["reason"]) == ("deferred", "case review pending")
    rejected = _one(cli.run("disposals", "reject", ids["R-3"], "--reason", "needed for appeal",
                            "--format", "json"))
    assert rejected["state"] == "rejected"

    hold = _one(cli.run("holds", "place", "--scope", "record:R-HOLD", "--type", "legal",
                        "--reason", "synthetic claim", "--format", "json"))
    assert set(hold) == HOLD_KEYS
    assert (hold["scope"], hold["active"], hold["records_covered"], hold["placed_by"]) == (
        "record:R-HOLD", True, 1, "officer.one")
    held = cli.run("disposals", "list", "--state", "held", "--format", "json").json()
    assert [d["record_id"] for d in held] == ["R-HOLD"]
    assert_refused(cli.run("disposals", "approve", ids["R-HOLD"], "--reason", "x", expect=None),
                   "held")
    assert [h["id"] for h in cli.run("holds", "list", "--format", "json").json()] == [hold["id"]]
    lifted = _one(cli.run("holds", "lift", str(hold["id"]), "--reason", "settled",
                          "--format", "json"))
    assert (lifted["active"], lifted["lifted_by"], lifted["lift_reason"]) == (
        False, "officer.one", "settled")
    assert cli.run("holds", "list", "--format", "json").json() == []
    back = cli.run("disposals", "list", "--state", "pending_review", "--format", "json").json()
    assert {d["record_id"]: d["approved_by"] for d in back} == {"R-HOLD": [], "R-J": []}

    explained = cli.run("records", "explain", "R-CP", "--format", "json").json()
    assert set(explained) == EXPLAIN_KEYS
    assert all(set(r) == EXPLAIN_RULE_KEYS for r in explained["rules"])
    assert (explained["state"], explained["due_on"], explained["rule"]) == (
        "approved", "2020-06-30", "isa.child_protection.case")
    assert [e["event"] for e in explained["history"]] == [
        "DisposalQueued", "DisposalApprovalRecorded", "DisposalApproved"]
    never = cli.run("records", "explain", "R-OPEN", "--format", "json").json()
    assert never["due_on"] is None and "closed_on" in never["needs_attention"]
    text = cli.run("records", "explain", "R-FUT").out
    assert "R-FUT" in text and "2045-04-04" in text and "Rules considered" in text

    window = ("--as-of", "2045-01-01", "--until", "2045-12-31")
    fc = cli.run("forecast", *window, "--format", "json").json()
    assert set(fc) == FORECAST_KEYS and set(fc["totals"]) == FORECAST_TOTALS_KEYS
    assert [set(i) for i in fc["items"]] == [FORECAST_ITEM_KEYS]
    assert fc["items"][0]["record_id"] == "R-FUT"
    assert fc["totals"]["by_month"] == {"2045-04": 1}
    csv_lines = cli.run("forecast", *window, "--format", "csv").out.splitlines()
    assert csv_lines == ["record_id,due_on,action,rule,category,controller",
                         "R-FUT,2045-04-04,delete,isa.education.pupil_record,"
                         "education.pupil_record,SCH-01"]
    table = cli.run("forecast", *window, "--format", "table").out
    assert "R-FUT" in table and "1 records fall due" in table

    shown = cli.run("policies", "show", "--format", "json").json()
    assert set(shown) == SHOW_KEYS and shown["version"] == first["policy_version"]
    assert [set(p) for p in shown["packs"]] == [SHOW_PACK_KEYS]
    assert shown["labels"]["education.pupil_record"] == "Pupil educational record"
    assert all(set(r) == SHOW_RULE_KEYS for r in shown["rules"])
    assert all(set(a) == SHOW_ALT_KEYS for r in shown["rules"] for a in r["alternatives"])
    json.dumps(shown)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_lifecycle_on_postgresql(tmp_path, database_url):
    """The same commands work on PostgreSQL: import, evaluate, two approvers, a hold placed
    and lifted, explain and forecast."""
    cli = Cli(tmp_path, database_url)
    cli.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    cli.run("controllers", "import", "controllers.csv")
    cli.run("agreements", "add", "ISA-01", "--title", "Synthetic ISA")
    write(tmp_path / "records.csv", RECORDS)
    cli.run("records", "import", "records.csv")
    assert cli.run("evaluate", "--format", "json").json()["queued"] == 5
    ids = {d["record_id"]: str(d["id"])
           for d in cli.run("disposals", "list", "--format", "json").json()}
    cli.run("disposals", "approve", ids["R-CP"], ids["R-1"], "--reason", "first")
    both = cli.run("disposals", "approve", ids["R-CP"], "--reason", "second", "--format", "json",
                   env=cli.as_actor("officer.two")).json()
    assert [(d["state"], d["approved_by"]) for d in both] == [
        ("approved", ["officer.one", "officer.two"])]
    hold = _one(cli.run("holds", "place", "--scope", "controller:SCH-01", "--type",
                        "subject_access", "--reason", "SAR", "--format", "json"))
    assert hold["records_covered"] == 2
    cli.run("holds", "lift", str(hold["id"]), "--reason", "answered")
    doc = cli.run("records", "explain", "R-HOLD", "--format", "json").json()
    assert set(doc) == EXPLAIN_KEYS
    assert [e["event"] for e in doc["history"]] == [
        "DisposalQueued", "DisposalHeld", "DisposalReturnedToReview"]
    fc = cli.run("forecast", "--as-of", "2045-01-01", "--until", "2045-12-31",
                 "--format", "json").json()
    assert [i["record_id"] for i in fc["items"]] == ["R-FUT"]


def test_failed_disposals_from_a_terminal(tmp_path):
    """A disposal that fails (no connector for its system) shows why in 'disposals list';
    'disposals retry' puts it back to approved, 'return-to-review' to pending review; both
    need a reason and refuse a case that is not failed; '--limit' says how many more."""
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    cli.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    cli.run("controllers", "import", "controllers.csv")
    cli.run("agreements", "add", "ISA-01", "--title", "Synthetic ISA")
    write(tmp_path / "records.csv", RECORDS)
    cli.run("records", "import", "records.csv")
    cli.run("evaluate")
    ids = {d["record_id"]: str(d["id"])
           for d in cli.run("disposals", "list", "--format", "json").json()}
    cli.run("disposals", "approve", ids["R-1"], ids["R-2"], "--reason", "due; checked")
    # No [connectors] at all: the case files' system has no connector, a permanent error.
    cli.run("disposals", "execute", expect=1)
    table = cli.run("disposals", "list", "--state", "failed").out
    assert "why_failed" in table and "no connector is configured for system 'case-files'" in table
    (failed,) = [d for d in cli.run("disposals", "list", "--state", "failed", "--format",
                                    "json").json() if d["record_id"] == "R-1"]
    assert set(failed) == DISPOSAL_KEYS and failed["attempts"] == 1
    assert failed["last_error"] == "no connector is configured for system 'case-files'"

    retried = _one(cli.run("disposals", "retry", ids["R-1"], "--reason",
                           "connector configured", "--format", "json"))
    assert (retried["state"], retried["last_error"], retried["attempts"]) == ("approved", None, 0)
    back = _one(cli.run("disposals", "return-to-review", ids["R-2"], "--reason",
                        "locator to be checked", "--format", "json"))
    assert (back["state"], back["approved_by"]) == ("pending_review", [])
    assert_refused(cli.run("disposals", "retry", ids["R-3"], "--reason", "x", expect=None),
                   f"case {ids['R-3']} is pending review: only a failed case can be retried")
    assert cli.run("disposals", "retry", ids["R-1"], expect=2).code == 2  # --reason required

    listed = cli.run("disposals", "list", "--limit", "2")
    total = len(cli.run("disposals", "list", "--format", "json").json())
    rows = listed.out.strip().splitlines()[2:]
    assert len(rows) == 2
    last = rows[-1].split()[0]
    assert f"2 shown; {total - 2:,} more: add --after-id {last} for the next ones" in listed.err
    rest = cli.run("disposals", "list", "--after-id", last, "--format", "json").json()
    assert len(rest) == total - 2
