"""Far-future dates (issue 11, item 7): ``9999-12-31`` (a common "open-ended" marker) and long
periods are decisions ("never due, needs attention"), never exceptions; a period longer than
150 years is refused by the loader, naming the file, the rule and the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import CATEGORY, alt, policy, rule

from retentiond.policy import Alternative, Facts, Period, PolicyError, decide, load_policy_set
from retentiond.policy.dates import DateOutOfRange, add_period, longer_than, round_up
from retentiond.policy.engine import due_from
from retentiond.policy.model import MAX_PERIOD_YEARS, MISSING_DAY, ROUNDINGS, TRIGGERS

#: Every date a record may carry, weighted to the top of the calendar where arithmetic breaks.
any_dates = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.dates(min_value=dt.date(9800, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.just(dt.date(9999, 12, 31)),
)
#: Every period the loader accepts, and some it refuses (the engine must not care).
any_periods = st.builds(Period, years=st.integers(0, 400), months=st.integers(0, 60),
                        days=st.integers(0, 2000))


@st.composite
def far_alternatives(draw: st.DrawFn) -> Alternative:
    return Alternative(trigger=draw(st.sampled_from(TRIGGERS)), period=draw(any_periods),
                       round_to=draw(st.none() | st.sampled_from(sorted(ROUNDINGS))),
                       after_period_end=draw(st.booleans()),
                       missing_day=draw(st.sampled_from(MISSING_DAY)))


@st.composite
def far_facts(draw: st.DrawFn) -> Facts:
    maybe = st.none() | any_dates
    return Facts(category=CATEGORY, date_of_birth=draw(maybe), date_of_death=draw(maybe),
                 opened_on=draw(maybe), closed_on=draw(maybe), event_on=draw(maybe),
                 terminated_on=draw(st.none() | any_dates))


@settings(max_examples=600)
@given(alts=st.lists(far_alternatives(), min_size=1, max_size=3), f=far_facts())
def test_decide_never_raises_for_any_date_or_period(alts: list[Alternative], f: Facts) -> None:
    """Whatever the dates (up to 9999-12-31) and periods, decide returns a decision; a rule whose
    arithmetic leaves the calendar makes the record never due, with the reason."""
    rules = [rule(f"r{i}", a) for i, a in enumerate(alts)]
    decision = decide(policy(*rules), f)
    out_of_range = [o for o in decision.outcomes if o.status == "out_of_range"]
    for outcome in out_of_range:
        assert "9999-12-31" in outcome.reason and outcome.due_on is None
    if out_of_range and f.terminated_on is None:
        assert decision.due_on is None
        assert decision.needs_attention and "never due" in decision.needs_attention
    for outcome in decision.outcomes:
        if outcome.status == "applies" and outcome.trigger_value is not None:
            assert outcome.due_on is not None and outcome.due_on >= outcome.trigger_value


@given(anchor=any_dates, period=any_periods, missing_day=st.sampled_from(MISSING_DAY),
       round_to=st.none() | st.sampled_from(sorted(ROUNDINGS)), after=st.booleans())
def test_due_from_raises_only_date_out_of_range(anchor: dt.date, period: Period,
                                                missing_day: str, round_to: str | None,
                                                after: bool) -> None:
    """The date arithmetic either gives a date on or after the anchor, or says plainly that
    the result is past 9999-12-31: never a bare OverflowError or 'year 10005 is out of range'."""
    a = Alternative(trigger="opened_on", period=period, round_to=round_to,
                    after_period_end=after, missing_day=missing_day)
    try:
        due = due_from(a, anchor)
    except DateOutOfRange as exc:
        assert "9999-12-31" in str(exc)
    else:
        assert due >= anchor


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: add_period(dt.date(9999, 12, 31), Period(years=6)), "9999-12-31 plus 6 years"),
    (lambda: add_period(dt.date(9999, 12, 31), Period(days=1)), "9999-12-31 plus 1 day(s)"),
    (lambda: add_period(dt.date(9999, 2, 28), Period(months=10, days=40)), "plus 40 day(s)"),
    (lambda: round_up(dt.date(9999, 9, 1), "academic_year_end"), "academic year end after"),
])
def test_out_of_range_names_the_arithmetic(call, expected: str) -> None:
    """The error says which date and period overflowed, so a person can find the record."""
    with pytest.raises(DateOutOfRange) as err:
        call()
    assert expected in str(err.value)


def test_open_ended_closure_is_never_due_and_says_why() -> None:
    """A case 'closed' on 9999-12-31 under a 40-year rule: never due, needing attention, with
    the trigger date named; the same record with a real date is decided as before."""
    p = policy(rule("cp", alt("closed_on", "40y")))
    marker = decide(p, Facts(category=CATEGORY, closed_on=dt.date(9999, 12, 31)))
    assert marker.due_on is None and marker.outcomes[0].status == "out_of_range"
    assert marker.needs_attention is not None
    assert "closed_on is 9999-12-31" in marker.needs_attention
    real = decide(p, Facts(category=CATEGORY, closed_on=dt.date(2020, 3, 1)))
    assert real.due_on == dt.date(2060, 3, 1) and real.needs_attention is None


def test_out_of_range_rule_blocks_even_when_another_rule_applies() -> None:
    """Latest date wins: a rule that cannot be dated may want later than any date, so the
    record is never due rather than due on the other rule's date."""
    p = policy(rule("short", alt("opened_on", "1y")), rule("long", alt("closed_on", "40y")))
    d = decide(p, Facts(category=CATEGORY, opened_on=dt.date(2001, 1, 1),
                        closed_on=dt.date(9999, 12, 31)))
    assert d.due_on is None and d.needs_attention and "long" in d.needs_attention


@pytest.mark.parametrize(("text", "too_long"), [
    ("150y", False), ("149y12m", False), ("149y11m31d", False), ("149y11m32d", True),
    ("151y", True), ("1801m", True),
    ("54790d", True), ("54000d", False), ("9000y", True), ("99999999999999999999y", True),
])
def test_longer_than(text: str, too_long: bool) -> None:
    """The upper bound is 150 calendar years, whatever units the period is written in."""
    assert longer_than(Period.parse(text), MAX_PERIOD_YEARS) is too_long


PACK = """[pack]
name = "long"
title = "Long"

[[rules]]
id = "long.one"
category = "test.record"
action = "delete"
citation = "test"
trigger = "opened_on"
period = "6y"

[[rules]]
id = "long.two"
category = "test.other"
action = "delete"
citation = "test"

[[rules.alternatives]]
when = { deceased = true }
trigger = "date_of_death"
period = "{period}"

[[rules.alternatives]]
trigger = "date_of_birth"
period = "75y"
"""


def test_loader_refuses_a_period_over_150_years(tmp_path: Path) -> None:
    """``9000y`` (for 90y) is refused whole, naming the file, the rule and the field."""
    path = tmp_path / "long.toml"
    path.write_text(PACK.replace("{period}", "9000y"))
    with pytest.raises(PolicyError) as err:
        load_policy_set([path])
    assert err.value.problems == [
        f"{path}: rule 'long.two'.alternatives[0].period: '9000y' is longer than 150 years, "
        "the longest period a rule may have"]
    path.write_text(PACK.replace("{period}", "150y"))
    loaded = load_policy_set([path])
    assert dataclasses.replace(loaded.rules[1].alternatives[0]).period == Period(years=150)


def test_an_unexpected_error_makes_one_record_need_attention_not_stop_all() -> None:
    """``decide_safely`` (what recompute, import, explain and preview call) turns an error in
    one record's decision into "never due, needs attention" naming the error."""
    from retentiond.policy import decide_safely

    broken = rule("broken", Alternative(trigger="opened_on", period=Period(years=1),
                                        missing_day="no_such_choice"), approvals_required=2)
    facts = Facts(category=CATEGORY, opened_on=dt.date(2020, 1, 1))
    with pytest.raises(ValueError):
        decide(policy(broken), facts)
    decision = decide_safely(policy(broken), facts)
    assert decision.due_on is None and decision.approvals_required == 2
    assert decision.needs_attention is not None
    assert decision.needs_attention.startswith("could not be decided (ValueError: unknown "
                                               "missing_day")
