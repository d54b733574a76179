"""Properties of the date engine and of ``decide`` that must hold for every input (hypothesis)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import CATEGORY, policy, rule

from retentiond.policy import Alternative, Condition, Facts, Period, Rule, RuleOutcome, decide
from retentiond.policy.dates import add_period, age_on, round_up
from retentiond.policy.engine import TERMINATION_RULE_ID, due_from
from retentiond.policy.model import MISSING_DAY, ROUNDINGS, TRIGGERS

dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2150, 12, 31))
periods = st.builds(
    Period,
    years=st.integers(0, 120),
    months=st.integers(0, 36),
    days=st.integers(0, 400),
)
missing_days = st.sampled_from(MISSING_DAY)
roundings = st.none() | st.sampled_from(sorted(ROUNDINGS))

FLAGS = ("a", "b")
flag_sets = st.frozensets(st.sampled_from(FLAGS), max_size=2)
ages = st.none() | st.integers(0, 30)
conditions = st.builds(
    Condition,
    has_flags=flag_sets,
    lacks_flags=flag_sets,
    deceased=st.none() | st.booleans(),
    died_before_age=ages,
    age_at_closure_at_least=ages,
    age_at_closure_below=ages,
)
# Mostly unconditional, so that generated rules often apply.
maybe_conditions = st.one_of(st.just(Condition()), st.just(Condition()), conditions)
small_periods = st.builds(
    Period, years=st.integers(0, 80), months=st.integers(0, 12), days=st.integers(0, 40)
)


def relativedelta_of(period: Period) -> relativedelta:
    """The plain ``relativedelta`` reading of a period (clipping to the month end)."""
    return relativedelta(years=period.years, months=period.months, days=period.days)


@st.composite
def alternatives(draw: st.DrawFn, *, last: bool) -> Alternative:
    """An alternative; the last of a rule has no condition, as the loader requires."""
    return Alternative(
        when=Condition() if last else draw(maybe_conditions),
        trigger=draw(st.sampled_from(TRIGGERS)),
        period=draw(small_periods),
        round_to=draw(roundings),
        after_period_end=draw(st.booleans()),
        missing_day=draw(missing_days),
    )


@st.composite
def rules(draw: st.DrawFn, rule_id: str) -> Rule:
    """A rule for the test category with one to three alternatives."""
    n = draw(st.integers(1, 3))
    alts = [draw(alternatives(last=False)) for _ in range(n - 1)]
    alts.append(draw(alternatives(last=True)))
    return rule(
        rule_id, *alts,
        action=draw(st.sampled_from(("review", "transfer", "return", "anonymise", "delete"))),
        approvals_required=draw(st.integers(1, 3)),
        when=draw(maybe_conditions),
    )


@st.composite
def rule_lists(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 4) -> list[Rule]:
    """Rules with distinct ids."""
    n = draw(st.integers(min_size, max_size))
    return [draw(rules(f"r{i}")) for i in range(n)]


record_dates = st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2060, 12, 31))
# Present three times in four, so that many records are decided rather than blocked.
optional_dates = st.one_of(st.none(), record_dates, record_dates, record_dates)


@st.composite
def record_facts(draw: st.DrawFn) -> Facts:
    """Facts for the test category, any of whose dates may be missing."""
    return Facts(
        category=CATEGORY,
        date_of_birth=draw(optional_dates),
        date_of_death=draw(optional_dates),
        opened_on=draw(optional_dates),
        closed_on=draw(optional_dates),
        event_on=draw(optional_dates),
        flags=draw(flag_sets),
        terminated_on=draw(st.one_of(st.none(), st.none(), st.none(), record_dates)),
        termination_action=draw(st.none() | st.sampled_from(("return", "delete"))),
    )


# --- the date engine ---------------------------------------------------------------------


@given(anchor=dates, period=periods, missing_day=missing_days)
def test_add_period_never_earlier_than_relativedelta(
    anchor: dt.date, period: Period, missing_day: str
) -> None:
    """trigger + period is never earlier than relativedelta gives, and at most a day later."""
    plain = anchor + relativedelta_of(period)
    result = add_period(anchor, period, missing_day=missing_day)
    assert plain <= result <= plain + dt.timedelta(days=1)
    if missing_day == "last_day":
        assert result == plain


@given(anchor=dates, period=periods, round_to=roundings, after=st.booleans(),
       missing_day=missing_days)
def test_due_date_never_earlier_than_trigger_plus_period(
    anchor: dt.date, period: Period, round_to: str | None, after: bool, missing_day: str
) -> None:
    """A rule's due date is never before trigger + period, and rounding adds under a year."""
    alternative = Alternative(trigger="event_on", period=period, round_to=round_to,
                              after_period_end=after, missing_day=missing_day)
    plain = anchor + relativedelta_of(period)
    due = due_from(alternative, anchor)
    assert due >= plain
    assert due <= plain + dt.timedelta(days=367)


@given(a=dates, b=dates, period=periods, missing_day=missing_days)
def test_add_period_is_monotonic(a: dt.date, b: dt.date, period: Period, missing_day: str) -> None:
    """A later trigger never gives an earlier date."""
    low, high = sorted((a, b))
    assert (add_period(low, period, missing_day=missing_day)
            <= add_period(high, period, missing_day=missing_day))


@given(dob=dates, on=dates)
def test_age_on_consistent_with_add_period(dob: dt.date, on: dt.date) -> None:
    """age_on(dob, d) = n exactly when the nth anniversary <= d < the (n+1)th anniversary."""
    if on < dob:
        dob, on = on, dob
    age = age_on(dob, on)
    assert age >= 0
    assert add_period(dob, Period(years=age)) <= on < add_period(dob, Period(years=age + 1))


@given(dob=dates, years=st.integers(0, 120))
def test_age_on_anniversary(dob: dt.date, years: int) -> None:
    """On the nth anniversary given by add_period a person is exactly n."""
    assert age_on(dob, add_period(dob, Period(years=years))) == years


@given(day=dates, round_to=st.sampled_from(sorted(ROUNDINGS)))
def test_round_up_idempotent_and_not_earlier(day: dt.date, round_to: str) -> None:
    """Rounding lands on the period end on or after the date, within a year, and is idempotent."""
    rounded = round_up(day, round_to)
    assert rounded >= day
    assert (rounded - day).days <= 365
    assert (rounded.month, rounded.day) == ROUNDINGS[round_to]
    assert round_up(rounded, round_to) == rounded


# --- decide ------------------------------------------------------------------------------


def _applying_dates(outcomes: tuple[RuleOutcome, ...]) -> list[dt.date]:
    return [o.due_on for o in outcomes
            if o.status == "applies" and o.due_on is not None and o.rule_id != TERMINATION_RULE_ID]


@settings(max_examples=400)
@given(rs=rule_lists(), extra=rules("extra"), f=record_facts())
def test_adding_a_rule_never_makes_a_record_due_earlier(
    rs: list[Rule], extra: Rule, f: Facts
) -> None:
    """Adding a rule never brings a due date forward, nor makes a blocked record due.

    Termination is left out: it is a cap on the rules' date (the earlier of the two), not one
    more rule in the latest-wins contest; ``test_termination_caps_the_rules_date`` covers it.
    """
    f = dataclasses.replace(f, terminated_on=None)
    before = decide(policy(*rs), f)
    after = decide(policy(*rs, extra), f)
    if before.due_on is None:
        if before.needs_attention and "none of the rules" not in before.needs_attention:
            assert after.due_on is None  # blocked (or uncovered) stays never due
        elif after.due_on is not None:
            # Nothing applied before: the new rule alone decides.
            assert after.rule_id == "extra"
    else:
        assert after.due_on is None or after.due_on >= before.due_on


@settings(max_examples=300)
@given(rs=rule_lists(), f=record_facts())
def test_due_date_is_the_latest_applying_rule(rs: list[Rule], f: Facts) -> None:
    """Without termination the due date is the latest date of any applying rule."""
    f = dataclasses.replace(f, terminated_on=None)
    decision = decide(policy(*rs), f)
    applying = _applying_dates(decision.outcomes)
    if decision.due_on is not None:
        assert decision.due_on == max(applying)
        assert decision.needs_attention is None
    else:
        assert decision.needs_attention


@given(rs=rule_lists(), f=record_facts())
def test_termination_never_later_than_notice_end(rs: list[Rule], f: Facts) -> None:
    """Under a terminated agreement the record is due no later than the end of the notice."""
    decision = decide(policy(*rs), f)
    if f.terminated_on is not None:
        assert decision.due_on is not None
        assert decision.due_on <= f.terminated_on


@given(rs=rule_lists(), f=record_facts(), data=st.data())
def test_decide_is_deterministic(rs: list[Rule], f: Facts, data: st.DataObject) -> None:
    """The same rules and facts give the same decision, in whatever order the rules come."""
    p = policy(*rs)
    first = decide(p, f)
    assert decide(p, f) == first
    shuffled = decide(policy(*data.draw(st.permutations(rs))), f)
    assert (shuffled.due_on, shuffled.action, shuffled.rule_id, shuffled.citation,
            shuffled.approvals_required, shuffled.auto_approve,
            shuffled.needs_attention is None) == (
        first.due_on, first.action, first.rule_id, first.citation,
        first.approvals_required, first.auto_approve, first.needs_attention is None,
    )


@settings(max_examples=300)
@given(rs=rule_lists(), f=record_facts(), end=record_dates)
def test_termination_caps_the_rules_date(rs: list[Rule], f: Facts, end: dt.date) -> None:
    """With a terminated agreement the due date is the earlier of the rules' date and the end
    of the notice (or the end of the notice when the rules give none)."""
    by_rules = decide(policy(*rs), dataclasses.replace(f, terminated_on=None))
    capped = decide(policy(*rs), dataclasses.replace(f, terminated_on=end))
    if by_rules.due_on is None:
        assert capped.due_on == end and capped.rule_id == TERMINATION_RULE_ID
    else:
        assert capped.due_on == min(by_rules.due_on, end)
