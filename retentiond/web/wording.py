"""Decisions in plain English for the record page: "Due on 1 March 2029: 25th birthday of a
subject born 29 February 2004, under rule ... citing ...". Built from ``explain``'s output."""

from __future__ import annotations

from typing import Any

from retentiond.policy.model import Period
from retentiond.wording import long_date

STATE_LABELS = {
    "pending_review": "Pending review", "held": "Held", "approved": "Approved",
    "executing": "Executing", "awaiting_confirmation": "Awaiting confirmation",
    "pending_confirmation": "Pending confirmation",
    "executed": "Executed", "certified": "Certified", "notified": "Notified", "failed": "Failed",
    "deferred": "Deferred", "rejected": "Rejected", "withdrawn": "Withdrawn", "due": "Due",
    "retained": "Retained",
}
#: GOV.UK tag colours by state.
STATE_TAGS = {
    "pending_review": "govuk-tag--blue", "held": "govuk-tag--orange", "approved": "govuk-tag--green",
    "executing": "govuk-tag--turquoise", "awaiting_confirmation": "govuk-tag--yellow",
    "pending_confirmation": "govuk-tag--yellow",
    "executed": "govuk-tag--grey", "certified": "govuk-tag--grey", "notified": "govuk-tag--grey",
    "failed": "govuk-tag--red", "deferred": "govuk-tag--purple", "rejected": "govuk-tag--pink",
    "withdrawn": "govuk-tag--grey", "due": "govuk-tag--blue", "retained": "govuk-tag--grey",
}
_TRIGGER_WORDS = {
    "opened_on": "the record was opened (or the report made) on",
    "closed_on": "the case closed on",
    "event_on": "the event on",
    "date_of_death": "the subject's death on",
}


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def basis(trigger: str | None, period: str | None, trigger_value: str | None) -> str:
    """Why a rule gives its date: '25th birthday of a subject born 29 February 2004'."""
    if not trigger or not period or not trigger_value:
        return "no date to count from"
    p = Period.parse(period)
    if trigger == "date_of_birth" and p.years and not p.months and not p.days:
        event = "birthday" if p.years < 50 else "anniversary of the birth"
        return f"{ordinal(p.years)} {event} of a subject born {long_date(trigger_value)}"
    words = _TRIGGER_WORDS.get(trigger, f"{trigger.replace('_', ' ')}")
    return f"{p.describe()} after {words} {long_date(trigger_value)}"


def headline(doc: dict[str, Any]) -> str:
    """The one sentence at the top of a record page."""
    if not doc.get("due_on"):
        return f"Never due as things stand: {doc.get('needs_attention') or 'no rule gives a date'}."
    applied = next((r for r in doc["rules"] if r["rule"] == doc["rule"] and r["due_on"]), None)
    why = basis(applied["trigger"], applied["period"], applied["trigger_value"]) if applied \
        else (doc.get("citation") or "")
    verb = "Was due on" if doc.get("is_due") else "Due on"
    return (f"{verb} {long_date(doc['due_on'])}: {why}, under rule {doc['rule']} citing "
            f"{doc['citation']}.")


def rule_sentence(rule: dict[str, Any]) -> str:
    """One rule considered, in words."""
    if rule["status"] == "applies":
        return (f"Gives {long_date(rule['due_on'])}: "
                f"{basis(rule['trigger'], rule['period'], rule['trigger_value'])}.")
    reason = str(rule["reason"])
    return reason[:1].upper() + reason[1:] + "."
