"""``records explain`` on real SQLite and PostgreSQL: the documented JSON keys, and a table case
for every default rule (DESIGN.md section 3), including 29 February births, deaths before and
after 18 and open child-protection cases."""

from __future__ import annotations

import json

import pytest
from conftest import TODAY
from int_support import D, live_case, load_records, seed_controllers

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.explain import explain, explain_text
from retentiond.lifecycle.holds import place_hold

#: The keys of ``records explain --format json``: a contract (docs/cli.md).
EXPLAIN_KEYS = {
    "record_id", "category", "controller", "agreement", "system", "locator", "holding_check",
    "source", "gone_at_source_at", "as_of", "policy_version", "stored_policy_version", "facts",
    "rules", "due_on", "is_due", "action",
    "rule", "citation", "approvals_required", "auto_approve", "needs_attention",
    "deferred_until", "holds", "state", "disposal", "history",
}
RULE_KEYS = {"rule", "citation", "status", "applied", "reason", "alternative", "trigger",
             "trigger_value", "period", "due_on"}
FACT_KEYS = {"subject_ref", "date_of_birth", "date_of_death", "opened_on", "closed_on",
             "event_on", "flags", "terminated_on"}

EDU, SAFE, CP, LAC = ("education.pupil_record", "safeguarding.referral",
                      "child_protection.case", "looked_after.case_record")


def row(category, **facts):
    """One record row of a category with the given facts (a subject when dates need one)."""
    out = {"record_id": "R-X", "category": category, "controller": "SCH-01", **facts}
    if "date_of_birth" in facts or "date_of_death" in facts:
        out["subject_ref"] = "S-X"
    return out


#: (row, due_on, rule that decides, trigger, trigger_value, alternative, approvals)
CASES = [
    pytest.param(row(EDU, date_of_birth="2001-06-15"), "2026-06-15", "isa.education.pupil_record",
                 "date_of_birth", "2001-06-15", 0, 1, id="pupil-25th-birthday"),
    pytest.param(row(EDU, date_of_birth="2004-02-29"), "2029-03-01", "isa.education.pupil_record",
                 "date_of_birth", "2004-02-29", 0, 1, id="pupil-born-29-feb"),
    pytest.param(row(EDU, date_of_birth="2000-02-29"), "2025-03-01", "isa.education.pupil_record",
                 "date_of_birth", "2000-02-29", 0, 1, id="pupil-born-29-feb-2000"),
    pytest.param(row(SAFE, opened_on="2019-07-01"), "2025-07-01", "isa.safeguarding.referral",
                 "opened_on", "2019-07-01", 0, 1, id="referral-6-years"),
    pytest.param(row(SAFE, opened_on="2020-02-29"), "2026-03-01", "isa.safeguarding.referral",
                 "opened_on", "2020-02-29", 0, 1, id="referral-on-29-feb"),
    pytest.param(row(CP, opened_on="1979-01-01", closed_on="1986-05-01"), "2026-05-01",
                 "isa.child_protection.case", "closed_on", "1986-05-01", 0, 2,
                 id="cp-closed-40-years"),
    pytest.param(row(LAC, date_of_birth="2000-01-01", date_of_death="2010-06-01"), "2025-06-01",
                 "isa.looked_after.case_record", "date_of_death", "2010-06-01", 0, 2,
                 id="lac-died-at-10"),
    pytest.param(row(LAC, date_of_birth="2000-03-10", date_of_death="2018-03-09"), "2033-03-09",
                 "isa.looked_after.case_record", "date_of_death", "2018-03-09", 0, 2,
                 id="lac-died-day-before-18"),
    pytest.param(row(LAC, date_of_birth="2000-03-10", date_of_death="2018-03-10"), "2075-03-10",
                 "isa.looked_after.case_record", "date_of_birth", "2000-03-10", 1, 2,
                 id="lac-died-on-18th-birthday"),
    pytest.param(row(LAC, date_of_birth="2000-01-01", date_of_death="2020-06-01"), "2075-01-01",
                 "isa.looked_after.case_record", "date_of_birth", "2000-01-01", 1, 2,
                 id="lac-died-at-20"),
    pytest.param(row(LAC, date_of_birth="2004-02-29", date_of_death="2022-02-28"), "2037-02-28",
                 "isa.looked_after.case_record", "date_of_death", "2022-02-28", 0, 2,
                 id="lac-born-29-feb-died-28-feb-aged-17"),
    pytest.param(row(LAC, date_of_birth="2004-02-29"), "2079-03-01",
                 "isa.looked_after.case_record", "date_of_birth", "2004-02-29", 1, 2,
                 id="lac-alive-born-29-feb"),
]


@pytest.fixture
def base(ctx, tmp_path):
    """A registry with the synthetic controllers."""
    seed_controllers(ctx, tmp_path)
    return ctx


@pytest.mark.parametrize(("record", "due_on", "rule", "trigger", "value", "alternative",
                          "approvals"), CASES)
def test_default_rule_explained(base, tmp_path, record, due_on, rule, trigger, value,
                                alternative, approvals):
    """explain gives the due date, deciding rule, trigger and its value for every default rule,
    and the stored due date agrees."""
    load_records(base, tmp_path, [record])
    doc = explain(base, "R-X", as_of=TODAY)
    assert doc.keys() == EXPLAIN_KEYS
    assert doc["facts"].keys() == FACT_KEYS
    assert (doc["record_id"], doc["category"]) == ("R-X", record["category"])
    assert (doc["due_on"], doc["rule"], doc["action"]) == (due_on, rule, "delete")
    assert doc["approvals_required"] == approvals
    assert doc["is_due"] is (D.fromisoformat(due_on) <= TODAY)
    assert doc["state"] == ("due" if doc["is_due"] else "retained")
    assert doc["needs_attention"] is None
    assert doc["policy_version"] == doc["stored_policy_version"] == base.policy.version
    (only,) = doc["rules"]
    assert only.keys() == RULE_KEYS
    assert (only["rule"], only["applied"], only["status"]) == (rule, True, "applies")
    assert (only["trigger"], only["trigger_value"], only["alternative"], only["due_on"]) == (
        trigger, value, alternative, due_on)
    assert only["reason"] and only["citation"]
    assert doc["holds"] == [] and doc["disposal"] is None and doc["history"] == []
    json.dumps(doc)  # JSON-ready as it stands


NEVER = [
    pytest.param(row(CP, opened_on="2020-01-01"), "closed_on", "missing_trigger",
                 id="cp-open-case"),
    pytest.param(row(EDU), "date_of_birth", "missing_trigger", id="pupil-without-birth-date"),
    pytest.param(row(SAFE), "opened_on", "missing_trigger", id="referral-without-report-date"),
    pytest.param(row(LAC), "date_of_birth", "missing_trigger", id="lac-without-dates"),
    pytest.param(row(LAC, date_of_death="2010-01-01"), "date_of_birth", "undetermined",
                 id="lac-death-without-birth"),
]


@pytest.mark.parametrize(("record", "missing", "status"), NEVER)
def test_never_due_needs_attention(base, tmp_path, record, missing, status):
    """A record missing its trigger (an open child-protection case, no date of birth) has
    due_on null and says what needs attention; it is never queued."""
    load_records(base, tmp_path, [record])
    doc = explain(base, "R-X", as_of=TODAY)
    assert (doc["due_on"], doc["is_due"], doc["action"], doc["rule"]) == (None, False, None, None)
    assert missing in doc["needs_attention"]
    (only,) = doc["rules"]
    assert (only["applied"], only["status"], only["due_on"]) == (False, status, None)
    assert doc["state"] == "retained"
    assert evaluate(base, TODAY).queued == 0
    assert "never due" in explain_text(doc)


def test_explain_shows_holds_case_and_history(base, tmp_path):
    """A queued, then held record shows its hold, its live case and its history."""
    load_records(base, tmp_path, [row(SAFE, opened_on="2015-01-01", system="case-files",
                                      locator="cf/1")])
    evaluate(base, TODAY)
    case = live_case(base, "R-X")
    doc = explain(base, "R-X", as_of=TODAY)
    assert doc["state"] == "pending_review"
    assert doc["disposal"] == {"id": case.id, "state": "pending_review", "due_on": "2021-01-01",
                               "action": "delete", "rule": "isa.safeguarding.referral",
                               "policy_version": base.policy.version, "approvals_required": 1,
                               "approved_by": [], "attempts": 0, "last_error": None}
    hold = place_hold(base, scope="record:R-X", hold_type="legal", reason="synthetic claim")
    doc = explain(base, "R-X", as_of=TODAY)
    assert doc["state"] == "held"
    assert doc["holds"] == [{"id": hold.id, "scope": "record:R-X", "type": "legal",
                             "reason": "synthetic claim", "until": None}]
    assert [e["event"] for e in doc["history"]] == ["DisposalQueued", "DisposalHeld"]
    assert {e["disposal"] for e in doc["history"]} == {case.id}
    assert (doc["system"], doc["locator"]) == ("case-files", "cf/1")
    text = explain_text(doc)
    assert "hold" in text and "R-X" in text and "isa.safeguarding.referral" in text


def test_held_record_not_queued_shows_held(base, tmp_path):
    """A due record under a hold explains as held even with no case."""
    load_records(base, tmp_path, [row(SAFE, opened_on="2015-01-01")])
    place_hold(base, scope="category:safeguarding.referral", hold_type="inquiry",
               reason="public inquiry")
    evaluate(base, TODAY)
    doc = explain(base, "R-X", as_of=TODAY)
    assert (doc["state"], doc["disposal"], len(doc["holds"])) == ("held", None, 1)


def test_explain_unknown_record_refused(base):
    """Explaining an unknown record is refused naming it."""
    with pytest.raises(LifecycleError, match="no record 'R-NOPE'"):
        explain(base, "R-NOPE", as_of=TODAY)
