"""Decisions in plain English for the record page: "Due on 1 March 2029: 25th birthday of a
subject born 29 February 2004, under rule ... citing ...". Built from ``explain``'s output."""

from __future__ import annotations

import re
from typing import Any

from retentiond.policy.model import Period
from retentiond.wording import long_date

STATE_LABELS = {
    "pending_review": "Pending review", "held": "Held", "approved": "Approved",
    "executing": "Executing", "awaiting_confirmation": "Awaiting confirmation",
    "pending_confirmation": "Pending confirmation",
    "executed": "Executed", "certified": "Certified", "notified": "Notified", "failed": "Failed",
    "deferred": "Deferred", "rejected": "Rejected", "withdrawn": "Withdrawn", "due": "Due",
    "retained": "Retained", "cooling_off": "Cooling off", "exception": "Exception raised",
}
#: GOV.UK tag colours by state.
STATE_TAGS = {
    "pending_review": "govuk-tag--blue", "held": "govuk-tag--orange", "approved": "govuk-tag--green",
    "executing": "govuk-tag--turquoise", "awaiting_confirmation": "govuk-tag--yellow",
    "pending_confirmation": "govuk-tag--yellow",
    "executed": "govuk-tag--grey", "certified": "govuk-tag--grey", "notified": "govuk-tag--grey",
    "failed": "govuk-tag--red", "deferred": "govuk-tag--purple", "rejected": "govuk-tag--pink",
    "withdrawn": "govuk-tag--grey", "due": "govuk-tag--blue", "retained": "govuk-tag--grey",
    "cooling_off": "govuk-tag--teal", "exception": "govuk-tag--magenta",
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


# --- words for codes ------------------------------------------------------------------------
# Pages show these; the codes stay in the record page's detail, exports and the API.

HOLD_TYPE_LABELS = {
    "legal": "Legal (litigation or a claim)", "subject_access": "Subject access request",
    "inquiry": "Public inquiry", "complaint": "Complaint", "police": "Police request",
    "other": "Other",
}
ACTION_LABELS = {
    "delete": "Delete", "return": "Return to the controller, then delete",
    "review": "A person decides", "anonymise": "Anonymise", "transfer": "Transfer to an archive",
}
TRIGGER_LABELS = {
    "date_of_birth": "the date of birth", "date_of_death": "the date of death",
    "opened_on": "the date it was opened (or the report made)",
    "closed_on": "the date the case closed", "event_on": "the date of the event",
}
ROUNDING_LABELS = {
    "academic_year_end": "the end of the academic year (31 August)",
    "financial_year_end": "the end of the financial year (31 March)",
    "calendar_year_end": "the end of the year (31 December)",
}
ROLE_LABELS = {
    "admin": "Administrator", "ig_officer": "IG officer", "approver": "Approver",
    "auditor": "Auditor", "controller": "Controller's user",
}
#: Audit event kinds whose words are not simply the kind spelt out.
_EVENT_WORDS = {
    "DisposalQueued": "Case opened for review",
    "DisposalApprovalRecorded": "Approval recorded (another approver needed)",
    "DisposalExceptionRaised": "Exception raised: back to the IG officer",
    "DisposalResumed": "Sent on to review after an exception",
    "DisposalCommented": "Comment",
    "CoolingOffEnded": "Cooling-off ended: ready to be carried out",
    "CoolingOffCancelled": "Cooling-off cancelled: back to review",
    "DisposalApproved": "Case approved",
    "DisposalClaimed": "Disposal started",
    "DisposalExecuted": "Disposal carried out and checked",
    "DisposalRetryScheduled": "Disposal to be tried again (temporary error)",
    "DisposalFailed": "Disposal failed",
    "DisposalRetried": "Failed case tried again",
    "DisposalReturnedToReview": "Failed case sent back to review",
    "DisposalReleased": "Disposal put back (not started)",
    "DisposalLeaseExpired": "Disposal interrupted (to be tried again)",
    "DisposalPackageDelivered": "Return package delivered",
    "DisposalTaskCreated": "Task created for a person to carry out",
    "DisposalCertified": "Disposal certified",
    "DisposalNotified": "Controller notified",
    "ApiTokenCreated": "API token created",
    "SignInFailed": "Sign-in failed",
    "SignInThrottled": "Sign-in refused (too many failures)",
    "UserSignedIn": "Signed in", "UserSignedOut": "Signed out",
    "ControllerNotificationSettingsChanged": "Controller's notice settings changed",
}
#: Permissions in words, for "you cannot do this" pages.
PERMISSION_WORDS = {
    "view": "see the queue and records", "view_holds": "see holds",
    "view_policy": "see the policy", "view_audit": "see the audit trail",
    "export": "export lists", "preview_policy": "preview a policy change",
    "approve": "approve disposals",
    "review": "defer, reject or retry cases, or confirm tasks for a person",
    "hold": "place or lift holds", "view_filters": "see saved filters",
    "manage_filters": "save or delete filters", "manage_users": "manage users",
    "resend": "resend notices", "acknowledge": "acknowledge certificates",
}


def event_label(kind: str) -> str:
    """``DisposalApproved`` -> 'Case approved'; an unknown kind is spelt out in words."""
    if kind in _EVENT_WORDS:
        return _EVENT_WORDS[kind]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).split()
    if words and words[0] == "Disposal":
        words[0] = "Case"
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:]


def plural(n: int, one: str, many: str | None = None) -> str:
    """``plural(1, "case")`` -> '1 case'; ``plural(2, "case")`` -> '2 cases'."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def case_words(message: str) -> str:
    """Lifecycle messages say 'disposal 17 is pending_review' (the command line's words);
    the pages say 'case 17 is pending review'."""
    message = re.sub(r"\bdisposal (?=\d)", "case ", message)
    return re.sub(r"\b(is|was) ([a-z_]+)\b", lambda m: f"{m.group(1)} "
                  f"{STATE_LABELS[m.group(2)].lower() if m.group(2) in STATE_LABELS else m.group(2)}",
                  message)


def scope_words(scope: str, category_label: Any = str) -> str:
    """A hold's scope in words: ``category:education.pupil_record`` -> 'Category: Pupil
    educational record'; ``record:R-1`` -> 'Record R-1'."""
    kind, _, value = scope.partition(":")
    if kind == "category":
        return f"Category: {category_label(value)}"
    if kind == "filter":
        return f"Saved filter “{value}”"
    return f"{kind.capitalize()} {value}" if kind in ("record", "subject", "controller") else scope
