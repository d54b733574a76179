"""Forecast and agreement termination on real SQLite and PostgreSQL (DESIGN.md section 3,
rule 9; seed 003, clause 13.1)."""

from __future__ import annotations

import pytest
from conftest import TODAY
from int_support import (
    D,
    at,
    audit_counts,
    cp_case,
    live_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
)

from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.explain import explain
from retentiond.lifecycle.forecast import ForecastTotals, forecast
from retentiond.policy.engine import TERMINATION_RULE_ID

ITEM_KEYS = {"record_id", "due_on", "action", "rule", "category", "controller"}
TOTALS_KEYS = {"total", "by_month", "by_category", "by_month_and_category"}


@pytest.fixture
def estate(ctx, tmp_path):
    """Records falling due before, across and after a window from TODAY to 2027-02-28."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        referral("R-PAST", "2019-01-01"),                    # 2025-01-01: before the window
        pupil("R-FIRST", "2001-11-22"),                      # 2026-11-22: first day
        referral("R-DEC-1", "2020-12-31", controller="SCH-02"),  # 2026-12-31
        pupil("R-DEC-2", "2001-12-05"),                      # 2026-12-05
        cp_case("R-JAN", "1987-01-15"),                      # 2027-01-15
        referral("R-LAST", "2021-02-28"),                    # 2027-02-28: last day
        referral("R-AFTER", "2021-03-01"),                   # 2027-03-01: after
        cp_case("R-OPEN", None),                             # never due
    ])
    return ctx


def test_forecast_window_is_inclusive_and_ordered(estate):
    """Forecast lists every record due from as_of to until inclusive, in due-date order."""
    totals = ForecastTotals()
    items = list(forecast(estate, as_of=TODAY, until=D(2027, 2, 28), totals=totals))
    assert [(i.record_id, i.due_on) for i in items] == [
        ("R-FIRST", D(2026, 11, 22)), ("R-DEC-2", D(2026, 12, 5)), ("R-DEC-1", D(2026, 12, 31)),
        ("R-JAN", D(2027, 1, 15)), ("R-LAST", D(2027, 2, 28)),
    ]
    assert items[2].as_json() == {
        "record_id": "R-DEC-1", "due_on": "2026-12-31", "action": "delete",
        "rule": "isa.safeguarding.referral", "category": "safeguarding.referral",
        "controller": "SCH-02"}
    assert items[0].as_json().keys() == ITEM_KEYS


def test_forecast_totals(estate):
    """Totals count the window's records by month, by category and by both."""
    totals = ForecastTotals()
    list(forecast(estate, as_of=TODAY, until=D(2027, 2, 28), totals=totals))
    doc = totals.as_json()
    assert doc.keys() == TOTALS_KEYS
    assert doc == {
        "total": 5,
        "by_month": {"2026-11": 1, "2026-12": 2, "2027-01": 1, "2027-02": 1},
        "by_category": {"child_protection.case": 1, "education.pupil_record": 2,
                        "safeguarding.referral": 2},
        "by_month_and_category": {
            "2026-11": {"education.pupil_record": 1},
            "2026-12": {"education.pupil_record": 1, "safeguarding.referral": 1},
            "2027-01": {"child_protection.case": 1},
            "2027-02": {"safeguarding.referral": 1},
        },
    }


@pytest.mark.parametrize(("as_of", "until", "expected"), [
    pytest.param(D(2026, 12, 31), D(2026, 12, 31), ["R-DEC-1"], id="one-day"),
    pytest.param(D(2027, 3, 2), D(2030, 1, 1), [], id="empty"),
    pytest.param(D(2024, 1, 1), D(2025, 1, 1), ["R-PAST"], id="past-window"),
])
def test_forecast_windows(estate, as_of, until, expected):
    """Windows of one day, with nothing in them, and in the past."""
    totals = ForecastTotals()
    assert [i.record_id for i in forecast(estate, as_of=as_of, until=until, totals=totals)] \
        == expected
    assert totals.total == len(expected)


def test_forecast_refuses_reversed_window(estate):
    """A window that ends before it starts is refused."""
    with pytest.raises(LifecycleError, match="before --as-of"):
        list(forecast(estate, as_of=TODAY, until=D(2026, 1, 1), totals=ForecastTotals()))


# --- agreements -----------------------------------------------------------------------------

@pytest.fixture
def under_isa(ctx, tmp_path):
    """Records provided under ISA-01 (3 months' notice, return) and one that is not."""
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-01", title="Synthetic ISA", notice="3m", action="return")
    load_records(ctx, tmp_path, [
        pupil("R-LATER", "2010-01-01", agreement="ISA-01"),        # 2035: later than termination
        referral("R-SOONER", "2020-01-01", agreement="ISA-01"),    # 2026-01-01: already sooner
        cp_case("R-OPEN", None, agreement="ISA-01"),               # never due by rule
        pupil("R-OTHER", "2010-01-01"),                            # not under the agreement
    ])
    return ctx


def test_termination_makes_records_due_after_notice(under_isa):
    """Terminating an agreement makes its records due on the termination date plus notice,
    with its action, unless a rule already makes them due sooner."""
    result = terminate_agreement(under_isa, "ISA-01", on=D(2026, 12, 15))
    assert (result.records, result.due_on, result.changed) == (3, D(2027, 3, 15), 2)
    recs = records_by_key(under_isa)
    assert (recs["R-LATER"].due_on, recs["R-LATER"].due_action, recs["R-LATER"].due_rule) == (
        D(2027, 3, 15), "return", TERMINATION_RULE_ID)
    assert (recs["R-OPEN"].due_on, recs["R-OPEN"].needs_attention) == (D(2027, 3, 15), None)
    assert (recs["R-SOONER"].due_on, recs["R-SOONER"].due_rule) == (
        D(2026, 1, 1), "isa.safeguarding.referral")
    assert recs["R-OTHER"].due_on == D(2035, 1, 1)
    assert audit_counts(under_isa)["AgreementTerminated"] == 1


def test_terminated_records_queue_with_return_action(under_isa):
    """On the due date evaluation queues the agreement's records with action return."""
    terminate_agreement(under_isa, "ISA-01", on=D(2026, 12, 15))
    day = D(2027, 3, 15)
    evaluate(at(under_isa, day), day)
    case = live_case(under_isa, "R-LATER")
    assert (case.action, case.rule_id, case.due_on) == ("return", TERMINATION_RULE_ID, day)
    doc = explain(under_isa, "R-LATER", as_of=day)
    assert doc["rule"] == TERMINATION_RULE_ID and doc["action"] == "return"
    assert [r["rule"] for r in doc["rules"]] == ["isa.education.pupil_record",
                                                 TERMINATION_RULE_ID]


def test_termination_applies_to_records_imported_later(under_isa, tmp_path):
    """A record imported under an agreement after its termination is due after the notice."""
    terminate_agreement(under_isa, "ISA-01", on=D(2026, 12, 15), notice="1m")
    load_records(under_isa, tmp_path, [pupil("R-NEW", "2012-01-01", agreement="ISA-01")])
    assert records_by_key(under_isa)["R-NEW"].due_on == D(2027, 1, 15)


def test_termination_is_idempotent_and_cannot_be_changed(under_isa):
    """Terminating again on the same date changes nothing; on another date is refused."""
    terminate_agreement(under_isa, "ISA-01", on=D(2026, 12, 15))
    before = snapshot(under_isa)
    again = terminate_agreement(under_isa, "ISA-01", on=D(2026, 12, 15))
    assert (again.records, again.changed) == (3, 0)
    assert snapshot(under_isa) == before
    with pytest.raises(LifecycleError, match="already terminated"):
        terminate_agreement(under_isa, "ISA-01", on=D(2027, 1, 1))
    with pytest.raises(LifecycleError, match="cannot be changed"):
        add_agreement(under_isa, code="ISA-01", title="Renamed")
    assert snapshot(under_isa) == before


def test_unknown_agreement_refused(under_isa):
    """Terminating an unknown agreement is refused and changes nothing."""
    before = snapshot(under_isa)
    with pytest.raises(LifecycleError, match="no agreement 'ISA-99'"):
        terminate_agreement(under_isa, "ISA-99", on=TODAY)
    assert snapshot(under_isa) == before
