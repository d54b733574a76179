"""``decide``: conditions, alternatives, several rules, never-due, termination, default pack.

DESIGN.md section 3 is the specification; each table pins one of its rules down.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from policy_builders import CATEGORY, D, alt, policy, rule

from retentiond.policy import ACTIONS, Condition, Facts, PolicySet, decide, load_policy_set
from retentiond.policy.engine import TERMINATION_CITATION, TERMINATION_RULE_ID

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PACK = REPO / "policies" / "isa-default.toml"


def facts(**kwargs: Any) -> Facts:
    """Facts for the test category unless another is given."""
    kwargs.setdefault("category", CATEGORY)
    if "flags" in kwargs:
        kwargs["flags"] = frozenset(kwargs["flags"])
    return Facts(**kwargs)


# --- conditions --------------------------------------------------------------------------

DOB = D(2004, 6, 15)  # 18th birthday 2022-06-15

# (condition, facts kwargs, expected outcome status, missing fact named in the reason)
CONDITION_CASES = [
    pytest.param(Condition(has_flags=frozenset({"sen"})), {"flags": {"sen"}},
                 "applies", None, id="has-flag-present"),
    pytest.param(Condition(has_flags=frozenset({"sen"})), {"flags": set()},
                 "not_applicable", None, id="has-flag-absent"),
    pytest.param(Condition(has_flags=frozenset({"sen", "ehcp"})), {"flags": {"sen"}},
                 "not_applicable", None, id="has-flags-needs-all"),
    pytest.param(Condition(has_flags=frozenset({"sen", "ehcp"})),
                 {"flags": {"sen", "ehcp", "other"}}, "applies", None, id="has-flags-superset"),
    pytest.param(Condition(lacks_flags=frozenset({"sen"})), {"flags": {"sen"}},
                 "not_applicable", None, id="lacks-flag-present"),
    pytest.param(Condition(lacks_flags=frozenset({"sen"})), {"flags": {"other"}},
                 "applies", None, id="lacks-flag-absent"),
    pytest.param(Condition(lacks_flags=frozenset({"a", "b"})), {"flags": {"b"}},
                 "not_applicable", None, id="lacks-flags-any-present"),
    pytest.param(Condition(deceased=True), {"date_of_death": D(2020, 1, 1)},
                 "applies", None, id="deceased-true-dead"),
    pytest.param(Condition(deceased=True), {}, "not_applicable", None, id="deceased-true-alive"),
    pytest.param(Condition(deceased=False), {}, "applies", None, id="deceased-false-alive"),
    pytest.param(Condition(deceased=False), {"date_of_death": D(2020, 1, 1)},
                 "not_applicable", None, id="deceased-false-dead"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": DOB, "date_of_death": D(2014, 1, 1)},
                 "applies", None, id="died-aged-9"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": DOB, "date_of_death": D(2022, 6, 14)},
                 "applies", None, id="died-day-before-18th"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": DOB, "date_of_death": D(2022, 6, 15)},
                 "not_applicable", None, id="died-on-18th-birthday"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": DOB, "date_of_death": D(2050, 1, 1)},
                 "not_applicable", None, id="died-as-adult"),
    pytest.param(Condition(died_before_age=18), {"date_of_birth": DOB},
                 "not_applicable", None, id="died-before-age-alive"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": D(2004, 2, 29), "date_of_death": D(2022, 2, 28)},
                 "applies", None, id="born-29-feb-died-28-feb-aged-17"),
    pytest.param(Condition(died_before_age=18),
                 {"date_of_birth": D(2004, 2, 29), "date_of_death": D(2022, 3, 1)},
                 "not_applicable", None, id="born-29-feb-died-1-march-aged-18"),
    pytest.param(Condition(died_before_age=18), {"date_of_death": D(2014, 1, 1)},
                 "undetermined", "date_of_birth", id="died-no-dob-unknown"),
    pytest.param(Condition(age_at_closure_at_least=17),
                 {"date_of_birth": DOB, "closed_on": D(2021, 6, 15)},
                 "applies", None, id="closure-at-17"),
    pytest.param(Condition(age_at_closure_at_least=17),
                 {"date_of_birth": DOB, "closed_on": D(2021, 6, 14)},
                 "not_applicable", None, id="closure-day-before-17th"),
    pytest.param(Condition(age_at_closure_at_least=17),
                 {"date_of_birth": DOB, "closed_on": D(2030, 1, 1)},
                 "applies", None, id="closure-adult-at-least-17"),
    pytest.param(Condition(age_at_closure_below=18),
                 {"date_of_birth": DOB, "closed_on": D(2022, 6, 14)},
                 "applies", None, id="closure-below-18"),
    pytest.param(Condition(age_at_closure_below=18),
                 {"date_of_birth": DOB, "closed_on": D(2022, 6, 15)},
                 "not_applicable", None, id="closure-on-18th-not-below"),
    pytest.param(Condition(age_at_closure_at_least=17, age_at_closure_below=18),
                 {"date_of_birth": DOB, "closed_on": D(2022, 1, 1)},
                 "applies", None, id="closure-band-inside"),
    pytest.param(Condition(age_at_closure_at_least=17, age_at_closure_below=18),
                 {"date_of_birth": DOB, "closed_on": D(2023, 1, 1)},
                 "not_applicable", None, id="closure-band-outside"),
    pytest.param(Condition(age_at_closure_at_least=17), {"date_of_birth": DOB},
                 "undetermined", "closed_on", id="closure-open-case-unknown"),
    pytest.param(Condition(age_at_closure_below=18), {"closed_on": D(2022, 1, 1)},
                 "undetermined", "date_of_birth", id="closure-no-dob-unknown"),
    pytest.param(Condition(has_flags=frozenset({"x"}), deceased=True),
                 {"flags": {"x"}, "date_of_death": D(2020, 1, 1)},
                 "applies", None, id="all-parts-hold"),
    pytest.param(Condition(has_flags=frozenset({"x"}), deceased=True), {"flags": {"x"}},
                 "not_applicable", None, id="one-part-fails"),
    pytest.param(Condition(has_flags=frozenset({"x"}), died_before_age=18),
                 {"date_of_death": D(2020, 1, 1)},
                 "not_applicable", None, id="false-part-beats-unknown-part"),
]


@pytest.mark.parametrize(("condition", "given", "status", "missing"), CONDITION_CASES)
def test_rule_condition(
    condition: Condition, given: dict[str, Any], status: str, missing: str | None
) -> None:
    """A rule's condition holds, fails, or is unknown for want of a named fact."""
    p = policy(rule("r", alt("event_on", "1y"), when=condition))
    decision = decide(p, facts(event_on=D(2020, 1, 1), **given))
    (outcome,) = decision.outcomes
    assert outcome.status == status
    if status == "applies":
        assert decision.due_on == D(2021, 1, 1)
    else:
        assert decision.due_on is None
    if missing is not None:
        assert decision.needs_attention is not None
        assert f"the record has no {missing}" in decision.needs_attention
        assert decision.needs_attention.startswith("r: cannot tell whether the rule applies")


def test_condition_describe() -> None:
    """A condition explains itself in words; an empty one is "always"."""
    cond = Condition(
        has_flags=frozenset({"b", "a"}), lacks_flags=frozenset({"c"}), deceased=True,
        died_before_age=18, age_at_closure_at_least=17, age_at_closure_below=18,
    )
    assert cond.describe() == (
        "flagged a, b and not flagged c and the subject has died and the subject died before "
        "age 18 and the subject was at least 17 at closure and the subject was under 18 at "
        "closure"
    )
    assert Condition().describe() == "always"
    assert Condition().is_empty
    assert not Condition(deceased=False).is_empty


# --- alternatives ------------------------------------------------------------------------

FIRST_MATCH = rule(
    "first-match",
    alt("event_on", "10y", when=Condition(has_flags=frozenset({"a"}))),
    alt("event_on", "20y", when=Condition(has_flags=frozenset({"b"}))),
    alt("event_on", "5y"),
)


@pytest.mark.parametrize(
    ("flags", "index", "due"),
    [
        pytest.param({"a", "b"}, 0, D(2030, 1, 1), id="both-flags-first-wins"),
        pytest.param({"a"}, 0, D(2030, 1, 1), id="first"),
        pytest.param({"b"}, 1, D(2040, 1, 1), id="second"),
        pytest.param(set(), 2, D(2025, 1, 1), id="fallback"),
    ],
)
def test_alternatives_first_match(flags: set[str], index: int, due: dt.date) -> None:
    """The first alternative whose condition holds is used, even if a later one is longer."""
    decision = decide(policy(FIRST_MATCH), facts(event_on=D(2020, 1, 1), flags=flags))
    assert decision.due_on == due
    assert decision.outcomes[0].alternative == index


def test_unknown_alternative_is_never_skipped() -> None:
    """An alternative that cannot be evaluated blocks the rule: it is not skipped for the next."""
    r = rule(
        "lac",
        alt("date_of_death", "15y", when=Condition(died_before_age=18)),
        alt("event_on", "75y"),
    )
    decision = decide(policy(r), facts(event_on=D(2020, 1, 1), date_of_death=D(2021, 1, 1)))
    assert decision.due_on is None
    assert decision.outcomes[0].status == "undetermined"
    assert decision.outcomes[0].alternative == 0
    assert decision.needs_attention == (
        "lac: cannot tell whether alternative 1 applies (the subject died before age 18): "
        "the record has no date_of_birth"
    )


def test_chosen_alternative_missing_trigger_is_never_due() -> None:
    """When the chosen alternative's trigger is missing, a later alternative is not tried."""
    r = rule(
        "r",
        alt("date_of_death", "8y", when=Condition(has_flags=frozenset({"x"}))),
        alt("event_on", "1y"),
    )
    decision = decide(policy(r), facts(event_on=D(2020, 1, 1), flags={"x"}))
    assert decision.due_on is None
    assert decision.outcomes[0].status == "missing_trigger"
    assert decision.needs_attention == "r: never due: the record has no date_of_death"


def test_no_alternative_holds() -> None:
    """A rule none of whose alternatives holds does not apply; alone, it leaves nothing due."""
    r = rule("r", alt("event_on", "1y", when=Condition(deceased=True)))
    decision = decide(policy(r), facts(event_on=D(2020, 1, 1)))
    assert decision.outcomes[0].status == "not_applicable"
    assert decision.outcomes[0].reason == "does not apply: no alternative's condition holds"
    assert decision.due_on is None
    assert decision.needs_attention == "none of the rules for 'test.record' applies to this record"


def test_outcome_explains_the_applying_alternative() -> None:
    """The outcome names the trigger, its value, the period and the condition that held."""
    r = rule("r", alt("date_of_death", "15y", when=Condition(deceased=True)))
    (outcome,) = decide(policy(r), facts(date_of_death=D(2020, 5, 1))).outcomes
    assert outcome.status == "applies"
    assert outcome.trigger == "date_of_death"
    assert outcome.trigger_value == D(2020, 5, 1)
    assert outcome.period == "15y"
    assert outcome.due_on == D(2035, 5, 1)
    assert outcome.reason == "15 years from date_of_death because the subject has died"
    assert outcome.citation == "citation for r"


# --- several rules for one category ------------------------------------------------------


def test_latest_date_wins() -> None:
    """Of several applying rules, the latest due date wins, with that rule's action."""
    p = policy(
        rule("short", alt("event_on", "1y"), action="delete"),
        rule("long", alt("event_on", "10y"), action="review"),
        rule("middle", alt("event_on", "5y"), action="anonymise"),
    )
    decision = decide(p, facts(event_on=D(2020, 1, 1)))
    assert decision.due_on == D(2030, 1, 1)
    assert decision.rule_id == "long"
    assert decision.citation == "citation for long"
    assert decision.action == "review"
    assert decision.needs_attention is None
    assert [o.status for o in decision.outcomes] == ["applies"] * 3


def test_latest_date_wins_across_triggers() -> None:
    """Rules counting from different triggers are compared by the dates they give."""
    p = policy(
        rule("from-birth", alt("date_of_birth", "25y")),
        rule("from-closure", alt("closed_on", "6y")),
    )
    young = facts(date_of_birth=D(2010, 1, 1), closed_on=D(2020, 1, 1))
    older = facts(date_of_birth=D(1990, 1, 1), closed_on=D(2020, 1, 1))
    assert decide(p, young).rule_id == "from-birth"
    assert decide(p, young).due_on == D(2035, 1, 1)
    assert decide(p, older).rule_id == "from-closure"
    assert decide(p, older).due_on == D(2026, 1, 1)


def test_not_applicable_rule_is_ignored() -> None:
    """A rule whose condition fails does not take part, however late its date would be."""
    p = policy(
        rule("base", alt("event_on", "1y")),
        rule("flagged", alt("event_on", "50y"), when=Condition(has_flags=frozenset({"x"}))),
    )
    decision = decide(p, facts(event_on=D(2020, 1, 1)))
    assert decision.due_on == D(2021, 1, 1)
    assert decision.rule_id == "base"


def test_approvals_strictest_and_auto_only_if_all() -> None:
    """The decision needs the most approvals any applying rule asks; auto only if all allow it."""
    p = policy(
        rule("auto", alt("event_on", "5y"), auto_approve=True),
        rule("two", alt("event_on", "1y"), approvals_required=2),
    )
    decision = decide(p, facts(event_on=D(2020, 1, 1)))
    assert decision.rule_id == "auto"
    assert decision.approvals_required == 2
    assert decision.auto_approve is False
    both_auto = policy(
        rule("a1", alt("event_on", "5y"), auto_approve=True),
        rule("a2", alt("event_on", "1y"), auto_approve=True),
    )
    assert decide(both_auto, facts(event_on=D(2020, 1, 1))).auto_approve is True


@pytest.mark.parametrize(
    ("cautious", "other"),
    [
        pytest.param(a, b, id=f"{a}-beats-{b}")
        for i, a in enumerate(ACTIONS)
        for b in ACTIONS[i + 1:]
    ],
)
def test_tie_break_on_cautious_action(cautious: str, other: str) -> None:
    """On the same due date the more cautious action wins, whatever the rule order."""
    r1 = rule("r1", alt("event_on", "6y"), action=other)
    r2 = rule("r2", alt("event_on", "6y"), action=cautious)
    for p in (policy(r1, r2), policy(r2, r1)):
        decision = decide(p, facts(event_on=D(2020, 1, 1)))
        assert decision.action == cautious
        assert decision.rule_id == "r2"


def test_actions_are_ordered_most_cautious_first() -> None:
    """The caution order is review, transfer, return, anonymise, delete."""
    assert ACTIONS == ("review", "transfer", "return", "anonymise", "delete")


def test_tie_break_then_stricter_approval_then_rule_id() -> None:
    """With the same date and action the rule with more approvals wins, then the lowest id."""
    one = rule("a-one", alt("event_on", "6y"))
    two = rule("b-two", alt("event_on", "6y"), approvals_required=2)
    for p in (policy(one, two), policy(two, one)):
        assert decide(p, facts(event_on=D(2020, 1, 1))).rule_id == "b-two"
    x = rule("x", alt("event_on", "6y"))
    y = rule("y", alt("event_on", "6y"))
    for p in (policy(x, y), policy(y, x)):
        assert decide(p, facts(event_on=D(2020, 1, 1))).rule_id == "x"


@pytest.mark.parametrize(
    ("blocking", "given", "reason"),
    [
        pytest.param(rule("blocked", alt("closed_on", "40y")), {},
                     "blocked: never due: the record has no closed_on", id="missing-trigger"),
        pytest.param(rule("blocked", alt("event_on", "1y"),
                          when=Condition(age_at_closure_below=18)), {"closed_on": D(2020, 1, 1)},
                     "blocked: cannot tell whether the rule applies (the subject was under 18 "
                     "at closure): the record has no date_of_birth", id="unknown-condition"),
    ],
)
def test_blocked_rule_makes_record_never_due(
    blocking: Any, given: dict[str, Any], reason: str
) -> None:
    """A rule that cannot be evaluated blocks the record even when another rule gives a date."""
    p = policy(rule("fine", alt("event_on", "1y")), blocking)
    decision = decide(p, facts(event_on=D(2020, 1, 1), **given))
    assert decision.due_on is None
    assert decision.action is None
    assert decision.rule_id is None
    assert decision.needs_attention == reason
    assert decision.is_due(D(2999, 1, 1)) is False


def test_several_blocked_rules_all_reported() -> None:
    """Every blocked rule is named in the reason, in rule order."""
    p = policy(rule("a", alt("closed_on", "1y")), rule("b", alt("date_of_birth", "1y")))
    assert decide(p, facts()).needs_attention == (
        "a: never due: the record has no closed_on; b: never due: the record has no date_of_birth"
    )


def test_no_rule_for_category() -> None:
    """A record whose category no rule covers is never due, with the reason."""
    p = policy(rule("r", alt("event_on", "1y")))
    decision = decide(p, facts(category="other.thing", event_on=D(2020, 1, 1)))
    assert decision.due_on is None
    assert decision.outcomes == ()
    assert decision.approvals_required == 1
    assert decision.needs_attention == (
        "no rule in the policy set covers category 'other.thing'"
    )


def test_never_due_keeps_strictest_approvals() -> None:
    """A never-due decision still reports the strictest approval count of the category's rules."""
    p = policy(rule("cp", alt("closed_on", "40y"), approvals_required=2))
    assert decide(p, facts()).approvals_required == 2


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        pytest.param(D(2021, 1, 1), True, id="on-due-date"),
        pytest.param(D(2021, 1, 2), True, id="after-due-date"),
        pytest.param(D(2020, 12, 31), False, id="day-before"),
    ],
)
def test_is_due(as_of: dt.date, due: bool) -> None:
    """A record may be disposed of on its due date and after, never the day before."""
    decision = decide(policy(rule("r", alt("event_on", "1y"))), facts(event_on=D(2020, 1, 1)))
    assert decision.is_due(as_of) is due


def test_decision_records_policy_version() -> None:
    """Every decision carries the version of the policy set it was made under."""
    p = policy(rule("r", alt("event_on", "1y")), version="abcdef0123456789")
    assert decide(p, facts(event_on=D(2020, 1, 1))).policy_version == "abcdef0123456789"
    assert decide(p, facts(category="no.rule")).policy_version == "abcdef0123456789"


# --- agreement termination ---------------------------------------------------------------

# (rule period from event_on 2020-01-01 or None for a blocked rule, terminated_on,
#  termination_action, expected due, expected action, expected rule id)
TERMINATION_CASES = [
    pytest.param("10y", D(2025, 2, 1), None, D(2025, 2, 1), "return", TERMINATION_RULE_ID,
                 id="termination-earlier-wins-return"),
    pytest.param("10y", D(2025, 2, 1), "delete", D(2025, 2, 1), "delete", TERMINATION_RULE_ID,
                 id="termination-earlier-agreement-action"),
    pytest.param("1y", D(2025, 2, 1), None, D(2021, 1, 1), "delete", "r",
                 id="rule-earlier-keeps-rule"),
    pytest.param("5y", D(2025, 1, 1), None, D(2025, 1, 1), "delete", "r",
                 id="same-day-keeps-rule"),
    pytest.param(None, D(2025, 2, 1), None, D(2025, 2, 1), "return", TERMINATION_RULE_ID,
                 id="never-due-becomes-due-on-termination"),
]


@pytest.mark.parametrize(
    ("period", "terminated_on", "termination_action", "due", "action", "rule_id"),
    TERMINATION_CASES,
)
def test_termination_override(
    period: str | None, terminated_on: dt.date, termination_action: str | None,
    due: dt.date, action: str, rule_id: str,
) -> None:
    """A terminated agreement makes the record due at the end of notice if that is sooner."""
    trigger = "event_on" if period else "closed_on"
    r = rule("r", alt(trigger, period or "40y"), approvals_required=2, auto_approve=False)
    decision = decide(policy(r), facts(
        event_on=D(2020, 1, 1), terminated_on=terminated_on,
        termination_action=termination_action,
    ))
    assert decision.due_on == due
    assert decision.action == action
    assert decision.rule_id == rule_id
    assert decision.needs_attention is None
    assert decision.approvals_required == 2
    assert decision.outcomes[-1].rule_id == TERMINATION_RULE_ID
    assert decision.outcomes[-1].due_on == terminated_on
    if rule_id == TERMINATION_RULE_ID:
        assert decision.citation == TERMINATION_CITATION
        assert decision.auto_approve is False


def test_termination_of_uncovered_category() -> None:
    """Even a record no rule covers is returned when its agreement is terminated."""
    decision = decide(
        policy(rule("r", alt("event_on", "1y"))),
        facts(category="other.thing", terminated_on=D(2025, 2, 1)),
    )
    assert decision.due_on == D(2025, 2, 1)
    assert decision.action == "return"
    assert decision.needs_attention is None


def test_termination_never_grants_auto_approval() -> None:
    """A termination disposal always needs a person, even if the rule allowed automatic approval."""
    r = rule("r", alt("event_on", "10y"), auto_approve=True)
    decision = decide(policy(r), facts(event_on=D(2020, 1, 1), terminated_on=D(2025, 2, 1)))
    assert decision.rule_id == TERMINATION_RULE_ID
    assert decision.auto_approve is False


# --- the default pack, rule by rule ------------------------------------------------------


@pytest.fixture(scope="module")
def default_pack() -> PolicySet:
    """The seed ISA pack as shipped in ``policies/``."""
    return load_policy_set([DEFAULT_PACK])


PUPIL = "isa.education.pupil_record"
REFERRAL = "isa.safeguarding.referral"
CP = "isa.child_protection.case"
LAC = "isa.looked_after.case_record"

# (rule id, category, facts kwargs, due_on, attention substring)
DEFAULT_PACK_CASES = [
    pytest.param(PUPIL, "education.pupil_record", {"date_of_birth": D(2001, 9, 14)},
                 D(2026, 9, 14), None, id="pupil-25th-birthday"),
    pytest.param(PUPIL, "education.pupil_record", {"date_of_birth": D(2004, 2, 29)},
                 D(2029, 3, 1), None, id="pupil-born-29-feb-2004"),
    pytest.param(PUPIL, "education.pupil_record", {"date_of_birth": D(2008, 12, 31)},
                 D(2033, 12, 31), None, id="pupil-born-31-dec"),
    pytest.param(PUPIL, "education.pupil_record", {"opened_on": D(2015, 9, 1)},
                 None, "the record has no date_of_birth", id="pupil-no-dob"),
    pytest.param(REFERRAL, "safeguarding.referral", {"opened_on": D(2019, 3, 10)},
                 D(2025, 3, 10), None, id="referral-6y-from-opened"),
    pytest.param(REFERRAL, "safeguarding.referral",
                 {"opened_on": D(2020, 2, 29), "closed_on": D(2022, 5, 1)},
                 D(2026, 3, 1), None, id="referral-29-feb-closure-ignored"),
    pytest.param(REFERRAL, "safeguarding.referral", {"date_of_birth": D(2010, 1, 1)},
                 None, "the record has no opened_on", id="referral-no-report-date"),
    pytest.param(CP, "child_protection.case", {"opened_on": D(2020, 1, 1)},
                 None, "the record has no closed_on", id="cp-open-case-never-due"),
    pytest.param(CP, "child_protection.case",
                 {"opened_on": D(2018, 1, 1), "closed_on": D(2021, 7, 1)},
                 D(2061, 7, 1), None, id="cp-closed-40y"),
    pytest.param(CP, "child_protection.case", {"closed_on": D(2024, 2, 29)},
                 D(2064, 2, 29), None, id="cp-closed-29-feb-leap-target"),
    pytest.param(CP, "child_protection.case", {"closed_on": D(2020, 2, 29)},
                 D(2060, 2, 29), None, id="cp-closed-29-feb-2020"),
    pytest.param(LAC, "looked_after.case_record", {"date_of_birth": D(2005, 4, 10)},
                 D(2080, 4, 10), None, id="lac-alive-75y"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2005, 4, 10), "date_of_death": D(2015, 6, 1)},
                 D(2030, 6, 1), None, id="lac-died-aged-10-15y-from-death"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2005, 4, 10), "date_of_death": D(2023, 4, 9)},
                 D(2038, 4, 9), None, id="lac-died-day-before-18th"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2005, 4, 10), "date_of_death": D(2023, 4, 10)},
                 D(2080, 4, 10), None, id="lac-died-on-18th-birthday-75y"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2005, 4, 10), "date_of_death": D(2035, 5, 5)},
                 D(2080, 4, 10), None, id="lac-died-adult-75y"),
    pytest.param(LAC, "looked_after.case_record", {"date_of_birth": D(2004, 2, 29)},
                 D(2079, 3, 1), None, id="lac-born-29-feb-alive"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2004, 2, 29), "date_of_death": D(2022, 2, 28)},
                 D(2037, 2, 28), None, id="lac-born-29-feb-died-28-feb-aged-17"),
    pytest.param(LAC, "looked_after.case_record",
                 {"date_of_birth": D(2004, 2, 29), "date_of_death": D(2022, 3, 1)},
                 D(2079, 3, 1), None, id="lac-born-29-feb-died-1-march-aged-18"),
    pytest.param(LAC, "looked_after.case_record", {"opened_on": D(2015, 1, 1)},
                 None, "the record has no date_of_birth", id="lac-no-dob-alive"),
    pytest.param(LAC, "looked_after.case_record", {"date_of_death": D(2015, 1, 1)},
                 None, "cannot tell whether alternative 1 applies", id="lac-no-dob-died"),
]

DEFAULT_PACK_RULES = {
    PUPIL: ("delete", 1),
    REFERRAL: ("delete", 1),
    CP: ("delete", 2),
    LAC: ("delete", 2),
}


@pytest.mark.parametrize(("rule_id", "category", "given", "due", "attention"),
                         DEFAULT_PACK_CASES)
def test_default_pack_rule(
    default_pack: PolicySet, rule_id: str, category: str, given: dict[str, Any],
    due: dt.date | None, attention: str | None,
) -> None:
    """Each rule of the seed ISA pack gives the due date DESIGN.md section 3 states."""
    decision = decide(default_pack, Facts(category=category, **given))
    assert decision.due_on == due
    action, approvals = DEFAULT_PACK_RULES[rule_id]
    assert decision.approvals_required == approvals
    assert decision.auto_approve is False
    assert decision.policy_version == default_pack.version
    if due is None:
        assert decision.action is None
        assert attention is not None
        assert decision.needs_attention is not None
        assert decision.needs_attention.startswith(f"{rule_id}: ")
        assert attention in decision.needs_attention
    else:
        assert decision.rule_id == rule_id
        assert decision.action == action
        assert decision.needs_attention is None


def test_default_pack_cases_cover_every_rule(default_pack: PolicySet) -> None:
    """Every rule in the seed pack has table cases here (a new rule needs its own cases)."""
    covered = {case.values[0] for case in DEFAULT_PACK_CASES}
    assert covered == {r.id for r in default_pack.rules} == set(DEFAULT_PACK_RULES)


def test_default_pack_needs_people(default_pack: PolicySet) -> None:
    """No seed rule allows automatic approval; child protection and looked-after need two."""
    by_id = {r.id: r for r in default_pack.rules}
    assert all(not r.auto_approve for r in default_pack.rules)
    assert by_id[CP].approvals_required == 2
    assert by_id[LAC].approvals_required == 2
    assert all(r.citation for r in default_pack.rules)


def test_default_pack_termination(default_pack: PolicySet) -> None:
    """An open child protection case under a terminated agreement is due for return."""
    decision = decide(default_pack, Facts(
        category="child_protection.case", opened_on=D(2020, 1, 1),
        terminated_on=D(2026, 3, 1), termination_action="return",
    ))
    assert decision.due_on == D(2026, 3, 1)
    assert decision.action == "return"
    assert decision.approvals_required == 2


def test_decision_is_frozen(default_pack: PolicySet) -> None:
    """Decisions are immutable value objects."""
    decision = decide(default_pack, Facts(category="education.pupil_record"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.due_on = D(2020, 1, 1)  # type: ignore[misc]
