"""``decide``: the due date, action and approvals for one record under a policy set.

Pure: it reads no clock, database or file. DESIGN.md section 3 is its specification.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from retentiond.policy.dates import DateOutOfRange, add_days, add_period, age_on, round_up
from retentiond.policy.facts import Facts
from retentiond.policy.model import (
    ACTIONS,
    Alternative,
    Condition,
    Evidence,
    PolicySet,
    Rule,
    Stage,
)

TERMINATION_RULE_ID = "agreement.termination"
TERMINATION_CITATION = ("Information Sharing Agreement (seed template), clause 13.1: termination "
                        "on one month's notice (three months where agreed); information "
                        "disclosed is securely returned")
TERMINATION_TITLE = "Agreement terminated: due at the end of the notice period"
#: What the termination rule rests on. It is built into the engine rather than written in a
#: pack, so its evidence lives here and the sign-off report prints it beside the packs' rules.
TERMINATION_EVIDENCE = Evidence(
    basis="agreement",
    source_quote="Where applicable, any Controller may terminate this Agreement by giving one "
    "month’s [can be varied to 3 months based on the amount of data shared] notice in writing "
    "to other Controllers unless the data is required to be shared in order to comply with a "
    "legal obligation. Any information disclosed to the Controller should be securely returned "
    "following the agreed termination date.",
    local_reading="The agreement says the information is returned after the termination date; "
    "it does not say the providing controller's own rules stop applying. retentiond reads it "
    "as a cap: a record falls due at the end of the notice with the agreement's action, unless "
    "its own rules make it due earlier. The notice (one or three months) and the action "
    "(return or delete) are set per agreement when it is recorded.",
)


def citations(policy: PolicySet) -> dict[str, str]:
    """Every rule id a decision can name, with its citation: the packs' rules and the
    agreement-termination rule the engine adds (which no pack holds)."""
    found = {r.id: r.citation for r in policy.rules}
    found[TERMINATION_RULE_ID] = TERMINATION_CITATION
    return found


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleOutcome:
    """What one rule made of one record, and why."""

    rule_id: str
    citation: str
    #: ``applies`` (gave a due date), ``not_applicable`` (its conditions do not hold),
    #: ``missing_trigger`` or ``undetermined`` (a fact it needs is missing: never due),
    #: ``out_of_range`` (the due date would fall after 9999-12-31: never due).
    status: str
    reason: str
    due_on: dt.date | None = None
    alternative: int | None = None
    trigger: str | None = None
    trigger_value: dt.date | None = None
    period: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """The outcome for one record: when it may be disposed of, how, and on whose authority."""

    due_on: dt.date | None
    action: str | None
    rule_id: str | None
    citation: str | None
    approvals_required: int
    auto_approve: bool
    policy_version: str
    #: Why the record is never due, when it is not (the record "needs attention").
    needs_attention: str | None
    outcomes: tuple[RuleOutcome, ...]

    def is_due(self, as_of: dt.date) -> bool:
        """True when the record may be disposed of on ``as_of``."""
        return self.due_on is not None and self.due_on <= as_of


def _holds(cond: Condition, facts: Facts) -> tuple[bool | None, str | None]:
    """Three-valued test: True, False, or None with the name of the missing fact."""
    if cond.has_flags and not cond.has_flags <= facts.flags:
        return False, None
    if cond.lacks_flags & facts.flags:
        return False, None
    if cond.deceased is not None and (facts.date_of_death is not None) != cond.deceased:
        return False, None
    if cond.died_before_age is not None:
        if facts.date_of_death is None:
            return False, None
        if facts.date_of_birth is None:
            return None, "date_of_birth"
        if age_on(facts.date_of_birth, facts.date_of_death) >= cond.died_before_age:
            return False, None
    if cond.age_at_closure_at_least is not None or cond.age_at_closure_below is not None:
        if facts.date_of_birth is None:
            return None, "date_of_birth"
        if facts.closed_on is None:
            return None, "closed_on"
        age = age_on(facts.date_of_birth, facts.closed_on)
        if cond.age_at_closure_at_least is not None and age < cond.age_at_closure_at_least:
            return False, None
        if cond.age_at_closure_below is not None and age >= cond.age_at_closure_below:
            return False, None
    return True, None


def stages_for(rule: Rule | None, facts: Facts) -> tuple[Stage, ...]:
    """The stages of ``rule`` a case for a record with ``facts`` goes through, in order: those
    whose ``when`` holds, and those it cannot tell for want of a fact (more review, never
    less). Empty for a count rule (or no rule)."""
    if rule is None:
        return ()
    return tuple(s for s in rule.stages if _holds(s.when, facts)[0] is not False)


def due_from(alt: Alternative, anchor: dt.date) -> dt.date:
    """The due date an alternative gives for a trigger date (DESIGN.md section 3, rule 1).

    Raises ``DateOutOfRange`` when it would fall after 9999-12-31 (an open-ended marker such
    as 9999-12-31 used as a trigger date)."""
    due = add_period(anchor, alt.period, missing_day=alt.missing_day)
    if alt.round_to is not None:
        due = round_up(due, alt.round_to)
    if alt.after_period_end:
        due = add_days(due, 1)
    return due


def _evaluate_rule(rule: Rule, facts: Facts) -> RuleOutcome:
    base: dict[str, Any] = {"rule_id": rule.id, "citation": rule.citation}
    ok, missing = _holds(rule.when, facts)
    if ok is None:
        return RuleOutcome(
            **base, status="undetermined",
            reason=f"cannot tell whether the rule applies ({rule.when.describe()}): "
            f"the record has no {missing}",
        )
    if not ok:
        return RuleOutcome(
            **base, status="not_applicable", reason=f"does not apply: not ({rule.when.describe()})"
        )
    for index, alt in enumerate(rule.alternatives):
        ok, missing = _holds(alt.when, facts)
        if ok is None:
            return RuleOutcome(
                **base, status="undetermined", alternative=index,
                reason=f"cannot tell whether alternative {index + 1} applies "
                f"({alt.when.describe()}): the record has no {missing}",
            )
        if not ok:
            continue
        anchor = facts.trigger(alt.trigger)
        detail: dict[str, Any] = {
            "alternative": index, "trigger": alt.trigger, "period": str(alt.period)
        }
        if anchor is None:
            return RuleOutcome(
                **base, **detail, status="missing_trigger",
                reason=f"never due: the record has no {alt.trigger}",
            )
        try:
            due = due_from(alt, anchor)
        except DateOutOfRange as exc:
            # Never due rather than an error: one record with an open-ended date must not
            # stop the decisions about every other (evaluation, recompute, import, preview).
            return RuleOutcome(
                **base, **detail, status="out_of_range", trigger_value=anchor,
                reason=f"never due: {exc} ({alt.trigger} is {anchor.isoformat()}; is it a "
                "placeholder for 'open-ended'?)",
            )
        when = "" if alt.when.is_empty else f" because {alt.when.describe()}"
        return RuleOutcome(
            **base, **detail, status="applies", trigger_value=anchor, due_on=due,
            reason=f"{alt.period.describe()} from {alt.trigger}{when}",
        )
    return RuleOutcome(
        **base, status="not_applicable", reason="does not apply: no alternative's condition holds"
    )


def _by_rules(policy: PolicySet, facts: Facts) -> Decision:
    rules = policy.rules_for(facts.category)
    outcomes = tuple(_evaluate_rule(rule, facts) for rule in rules)
    applying = [(o, r) for o, r in zip(outcomes, rules, strict=True) if o.status == "applies"]
    blocked = [o for o in outcomes
               if o.status in ("missing_trigger", "undetermined", "out_of_range")]
    never = Decision(
        due_on=None, action=None, rule_id=None, citation=None,
        approvals_required=max([r.approvals_required for r in rules] or [1]),
        auto_approve=False, policy_version=policy.version, needs_attention=None,
        outcomes=outcomes,
    )
    if not rules:
        reason = f"no rule in the policy set covers category {facts.category!r}"
        return replace(never, needs_attention=reason)
    if blocked:
        reason = "; ".join(f"{o.rule_id}: {o.reason}" for o in blocked)
        return replace(never, needs_attention=reason)
    if not applying:
        reason = f"none of the rules for {facts.category!r} applies to this record"
        return replace(never, needs_attention=reason)
    # Latest date wins; on a tie the more cautious action, then the stricter approval, then
    # the lowest rule id: ``max`` keeps the first of equal keys, and sorting by id first makes
    # the choice independent of the order the packs were named in (which the version ignores).
    outcome, rule = max(
        sorted(applying, key=lambda p: p[1].id),
        key=lambda p: (p[0].due_on, -ACTIONS.index(p[1].action), p[1].approvals_required),
    )
    return Decision(
        due_on=outcome.due_on, action=rule.action, rule_id=rule.id, citation=rule.citation,
        approvals_required=max(r.approvals_required for _, r in applying),
        auto_approve=all(r.auto_approve for _, r in applying),
        policy_version=policy.version, needs_attention=None, outcomes=outcomes,
    )


def decide(policy: PolicySet, facts: Facts) -> Decision:
    """Decide when a record may be disposed of and how.

    Every rule for the record's category is considered; the latest due date wins (never
    dispose earlier than any applicable rule allows). A rule that cannot be evaluated for want
    of a fact makes the record never due, with the reason. When the agreement the record was
    provided under has been terminated, the record is due at the end of the notice period
    with the agreement's action, if that is sooner (DESIGN.md section 3, rule 9).
    """
    decision = _by_rules(policy, facts)
    if facts.terminated_on is None:
        return decision
    termination = RuleOutcome(
        rule_id=TERMINATION_RULE_ID,
        citation=TERMINATION_CITATION,
        status="applies",
        reason="the agreement the record was provided under was terminated: due at the end "
        "of the notice period",
        due_on=facts.terminated_on,
        trigger="terminated_on",
        trigger_value=facts.terminated_on,
    )
    outcomes = (*decision.outcomes, termination)
    if decision.due_on is not None and decision.due_on <= facts.terminated_on:
        return replace(decision, outcomes=outcomes)
    return replace(
        decision,
        due_on=facts.terminated_on,
        action=facts.termination_action or "return",
        rule_id=TERMINATION_RULE_ID,
        citation=TERMINATION_CITATION,
        auto_approve=False,
        needs_attention=None,
        outcomes=outcomes,
    )


def decide_safely(policy: PolicySet, facts: Facts) -> Decision:
    """``decide``, but an unexpected error deciding one record makes that record never due,
    needing attention with the error named, instead of stopping the evaluation, recompute,
    import or preview of every other record. ``decide`` has no such error that is known
    (out-of-range dates are a decision, ``out_of_range``); this is the last line."""
    try:
        return decide(policy, facts)
    except Exception as exc:  # one record must never stop the others
        rules = policy.rules_for(facts.category)
        return Decision(
            due_on=None, action=None, rule_id=None, citation=None,
            approvals_required=max([r.approvals_required for r in rules] or [1]),
            auto_approve=False, policy_version=policy.version,
            needs_attention=f"could not be decided ({type(exc).__name__}: {exc}); never due "
            "until this is fixed",
            outcomes=(),
        )
