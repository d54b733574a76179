"""The sign-off report: every rule of one or more packs in plain English, for a DPO to sign.

Pure: it builds a ``Report`` from a policy set (worked examples are computed by ``decide``, the
engine that makes every real decision) and renders it as HTML. The PDF edition is rendered
from the same ``Report`` by ``retentiond.policy.report_pdf``. ``docs/policies.md`` ("The
sign-off report") describes it for the people who read it.

The report's SHA-256 (its *fingerprint*) is a hash of its content, not of a file: the same
rules, evidence and worked examples give the same fingerprint whichever edition is read,
whenever and wherever it is rendered. It leaves out what signing off changes (the sign-off
fields) and what cannot change a rule (the file's path), so that a pack can quote the
fingerprint of the report it was signed off against, and ``policies check`` can tell when the
pack no longer says what that report said.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from retentiond.policy.engine import (
    TERMINATION_CITATION,
    TERMINATION_EVIDENCE,
    TERMINATION_RULE_ID,
    decide,
)
from retentiond.policy.facts import Facts
from retentiond.policy.model import Alternative, Condition, Evidence, Pack, PolicySet, Rule

#: Changes whenever the report's content model changes, so old fingerprints never match new
#: content by accident.
REPORT_FORMAT = "retentiond-signoff-report/1"

BASIS_LABELS: dict[str, str] = {
    "statute": "Statute: an Act of Parliament or regulations made under one",
    "statutory_guidance": "Statutory guidance: guidance the council must have regard to",
    "guidance": "Guidance: professional or sector guidance, not binding",
    "agreement": "Agreement: the Information Sharing Agreement the data was shared under",
    "local_reading": "Local reading: a choice made in this pack, not a requirement of any "
                     "source",
}

TRIGGER_WORDS: dict[str, str] = {
    "date_of_birth": "the date of birth",
    "date_of_death": "the date of death",
    "opened_on": "the date the case or record was opened",
    "closed_on": "the date the case was closed",
    "event_on": "the date of the category's event (see the note)",
    "terminated_on": "the end of the agreement's notice period",
}

FACT_WORDS: dict[str, str] = {
    "date_of_birth": "born",
    "date_of_death": "died",
    "opened_on": "opened",
    "closed_on": "closed",
    "event_on": "event date",
    "flags": "flags",
    "terminated_on": "agreement's notice ends",
}

FACT_NOUNS: dict[str, str] = {
    "date_of_birth": "date of birth",
    "date_of_death": "date of death",
    "opened_on": "opening date",
    "closed_on": "closure date",
    "event_on": "event date",
}

ACTION_WORDS: dict[str, str] = {
    "review": "a person reviews the record and decides what happens to it",
    "transfer": "the record is transferred to an archive (a place of deposit)",
    "return": "the record is returned to the controller that provided it, then this copy is "
              "deleted",
    "anonymise": "the record is anonymised",
    "delete": "the record is deleted",
}

ROUNDING_WORDS: dict[str, str] = {
    "academic_year_end": "the end of that academic year (31 August)",
    "financial_year_end": "the end of that financial year (31 March)",
    "calendar_year_end": "the end of that calendar year (31 December)",
}

# Synthetic dates the worked examples are built from. None is anyone's: they are chosen so
# that every kind of condition can be met (died young or not, closed before or after 17).
_BORN = dt.date(2001, 5, 14)
_DEFAULTS: dict[str, dt.date] = {
    "date_of_birth": _BORN,
    "opened_on": dt.date(2024, 3, 11),
    "event_on": dt.date(2024, 7, 19),
    "closed_on": dt.date(2025, 7, 31),
}
_DEATHS: tuple[dt.date | None, ...] = (None, dt.date(2011, 11, 20), dt.date(2021, 11, 20))
_CLOSURES: tuple[dt.date, ...] = (dt.date(2025, 7, 31), dt.date(2011, 9, 1),
                                  dt.date(2018, 9, 1))
_LEAP_DAY = {"date_of_birth": dt.date(2004, 2, 29)}
_LEAP_DAY_EVENT = dt.date(2024, 2, 29)


def day(value: dt.date) -> str:
    """A date the way a person reads it: 1 March 2029."""
    return f"{value.day} {value:%B %Y}"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Example:
    """One worked example: synthetic facts and what the engine made of them."""

    label: str
    facts: tuple[tuple[str, str], ...]
    due_on: str
    why: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RuleReport:
    """One rule as the report shows it."""

    id: str
    pack: str
    category: str
    title: str
    plain: tuple[str, ...]
    action: str
    approvals: str
    citation: str
    note: str | None
    source_quote: str | None
    source_url: str | None
    basis: str | None
    basis_label: str
    local_decisions: tuple[str, ...]
    missing_evidence: tuple[str, ...]
    examples: tuple[Example, ...]
    same_category: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class PackReport:
    """One pack's heading: what it is, whether it needs sign-off."""

    name: str
    title: str
    description: str
    requires_local_signoff: bool
    rules: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """The whole report; ``fingerprint`` is the SHA-256 of everything else in it."""

    format: str
    packs: tuple[PackReport, ...]
    rules: tuple[RuleReport, ...]
    fingerprint: str

    @property
    def missing_evidence(self) -> int:
        """How many rules lack some evidence."""
        return sum(1 for r in self.rules if r.missing_evidence)


# --- plain English --------------------------------------------------------------------------

def _alternative_words(alt: Alternative) -> str:
    words = f"{alt.period.describe()} from {TRIGGER_WORDS[alt.trigger]}"
    if alt.round_to is not None:
        words += f", moved on to {ROUNDING_WORDS[alt.round_to]}"
    if alt.after_period_end:
        words += ", then one day more"
    return words


def _condition_words(cond: Condition) -> str:
    return cond.describe().replace("flagged ", "the record is flagged ").replace(
        "not flagged ", "the record is not flagged ")


def plain_english(rule: Rule) -> tuple[str, ...]:
    """The rule's date calculation, one sentence per alternative, in the engine's order."""
    lines: list[str] = []
    if not rule.when.is_empty:
        lines.append(f"This rule applies only when {_condition_words(rule.when)}.")
    alts = rule.alternatives
    for i, alt in enumerate(alts):
        text = _alternative_words(alt)
        if len(alts) == 1:
            lines.append(f"Keep for {text}.")
        elif alt.when.is_empty:
            lines.append(f"Otherwise keep for {text}.")
        else:
            lines.append(f"{'If' if i == 0 else 'Else, if'} {_condition_words(alt.when)}: "
                         f"keep for {text}.")
    if any(a.trigger == "date_of_birth" for a in alts):
        lines.append("Someone born on 29 February reaches each anniversary on 1 March in "
                     "other years, so nothing is disposed of a day early.")
    lines.append("A record without the date a calculation needs is never due: it is listed "
                 "as needing attention instead.")
    return tuple(lines)


def _approvals(rule: Rule) -> str:
    cooling = (f" Once approved, it waits {rule.cooling_off_days} day"
               f"{'' if rule.cooling_off_days == 1 else 's'} (cooling-off) before it can be "
               "carried out; an IG officer may cancel it meanwhile."
               if rule.cooling_off_days else "")
    if rule.stages:
        stages = "; ".join(f"{i}. {s.describe()}" for i, s in enumerate(rule.stages, start=1))
        return (f"Each disposal is approved in {len(rule.stages)} stages, in order, each by a "
                f"member of the stage's group and a different person from every earlier "
                f"stage: {stages}.{cooling}")
    people = ("one person" if rule.approvals_required == 1
              else f"{rule.approvals_required} different people")
    auto = " (it may be approved automatically)" if rule.auto_approve else ""
    return f"Each disposal needs the approval of {people}{auto}.{cooling}"


def _local_decisions(rule_note: str | None, evidence: Evidence) -> tuple[str, ...]:
    out = []
    if evidence.local_reading:
        out.append(evidence.local_reading)
    if rule_note:
        out.append(rule_note)
    out.append("Which of your records belong to this category, and that the date each is "
               "imported with is the date this rule counts from.")
    return tuple(out)


# --- worked examples ------------------------------------------------------------------------

def _reads(rules: Iterable[Rule]) -> list[str]:
    """The facts these rules read, in a fixed order."""
    read: set[str] = set()
    for rule in rules:
        for cond in (rule.when, *(a.when for a in rule.alternatives)):
            if cond.has_flags or cond.lacks_flags:
                read.add("flags")
            if cond.deceased is not None or cond.died_before_age is not None:
                read.add("date_of_death")
            if cond.died_before_age is not None or cond.age_at_closure_at_least is not None \
                    or cond.age_at_closure_below is not None:
                read.add("date_of_birth")
            if cond.age_at_closure_at_least is not None or cond.age_at_closure_below is not None:
                read.add("closed_on")
        read.update(a.trigger for a in rule.alternatives)
    return [k for k in FACT_WORDS if k in read]


def _profiles(rule: Rule, index: int) -> Iterator[Facts]:
    """Candidate facts for reaching alternative ``index`` of ``rule``, most ordinary first."""
    flags = rule.when.has_flags | rule.alternatives[index].when.has_flags
    for death in _DEATHS:
        for closed in _CLOSURES:
            yield Facts(category=rule.category, date_of_birth=_BORN, date_of_death=death,
                        opened_on=_DEFAULTS["opened_on"], event_on=_DEFAULTS["event_on"],
                        closed_on=closed, flags=flags)


def _alone(rule: Rule) -> PolicySet:
    return PolicySet(version="report", packs=(), rules=(rule,))


def _fact_lines(facts: Facts, reads: Sequence[str]) -> tuple[tuple[str, str], ...]:
    out = []
    for key in reads:
        value = getattr(facts, key)
        if key == "flags":
            out.append((FACT_WORDS[key], ", ".join(sorted(value)) or "none"))
        else:
            out.append((FACT_WORDS[key], day(value) if value is not None else "not recorded"))
    return tuple(out)


def _example(label: str, rule: Rule, facts: Facts, reads: Sequence[str]) -> Example:
    decision = decide(_alone(rule), facts)
    if decision.due_on is None:
        due, why = "never (needs attention)", decision.needs_attention or ""
        why = why.removeprefix(f"{rule.id}: ")
    else:
        due = day(decision.due_on)
        outcome = next(o for o in decision.outcomes if o.rule_id == rule.id)
        why = outcome.reason
    return Example(label=label, facts=_fact_lines(facts, reads), due_on=due, why=humanise(why))


def worked_examples(rule: Rule) -> tuple[Example, ...]:
    """One example per alternative, a 29 February one, and one missing the date it needs;
    every date in them is computed by ``decide``."""
    reads = _reads([rule])
    examples: list[Example] = []
    last_facts: Facts | None = None
    for index, alt in enumerate(rule.alternatives):
        for facts in _profiles(rule, index):
            decision = decide(_alone(rule), facts)
            outcome = decision.outcomes[0]
            if outcome.status == "applies" and outcome.alternative == index:
                label = ("Example" if len(rule.alternatives) == 1
                         else "Otherwise" if alt.when.is_empty
                         else f"When {_condition_words(alt.when)}")
                examples.append(_example(label, rule, facts, reads))
                last_facts = facts
                break
    if last_facts is None:
        return tuple(examples)
    trigger = rule.alternatives[-1].trigger
    leap = _LEAP_DAY.get(trigger, _LEAP_DAY_EVENT)
    if trigger != "date_of_death":
        examples.append(_example(f"{FACT_NOUNS[trigger].capitalize()} on 29 February", rule,
                                 _with(last_facts, trigger, leap), reads))
    examples.append(_example(f"No {FACT_NOUNS[trigger]} recorded", rule,
                             _with(last_facts, trigger, None), reads))
    return tuple(examples)


def _with(facts: Facts, name: str, value: dt.date | None) -> Facts:
    changes: dict[str, Any] = {name: value}
    return dataclasses.replace(facts, **changes)


def humanise(reason: str) -> str:
    """An engine reason with the fact names a reader knows: "date of birth", not the column."""
    for key, noun in FACT_NOUNS.items():
        reason = reason.replace(key, noun)
    return reason


# --- the report -----------------------------------------------------------------------------

def _rule_report(rule: Rule, pack: str, policy: PolicySet) -> RuleReport:
    ev = rule.evidence
    return RuleReport(
        id=rule.id, pack=pack, category=rule.category, title=rule.title,
        plain=plain_english(rule),
        action=f"Then {ACTION_WORDS[rule.action]} (action '{rule.action}').",
        approvals=_approvals(rule), citation=rule.citation, note=rule.note,
        source_quote=ev.source_quote, source_url=ev.source_url, basis=ev.basis,
        basis_label=BASIS_LABELS.get(ev.basis or "", "Not stated"),
        local_decisions=_local_decisions(rule.note, ev), missing_evidence=ev.missing(),
        examples=worked_examples(rule),
        same_category=tuple(r.id for r in policy.rules_for(rule.category) if r.id != rule.id),
    )


def _termination_report() -> RuleReport:
    ev = TERMINATION_EVIDENCE
    return RuleReport(
        id=TERMINATION_RULE_ID, pack="(built in)", category="every category",
        title="A record shared under a terminated agreement",
        plain=("When the agreement a record was shared under is terminated, the record falls "
               "due at the end of the notice period (one or three months, as recorded for the "
               "agreement), unless its own rules make it due sooner.",
               "A record its rules leave never due (an open case, a missing date) still falls "
               "due at the end of the notice."),
        action="Then the agreement's action is taken: normally the record is returned to the "
               "controller that provided it, then this copy is deleted.",
        approvals="Each such disposal needs the approval of a person; it is never approved "
                  "automatically.",
        citation=TERMINATION_CITATION, note=None, source_quote=ev.source_quote,
        source_url=ev.source_url, basis=ev.basis,
        basis_label=BASIS_LABELS[ev.basis or ""],
        local_decisions=(ev.local_reading or "",
                         "For each agreement: its notice period and whether records are "
                         "returned or deleted when it ends."),
        missing_evidence=ev.missing(), examples=(), same_category=(),
    )


def _content(report: Report) -> dict[str, Any]:
    doc = dataclasses.asdict(report)
    doc.pop("fingerprint")
    return doc


def fingerprint_of(report: Report) -> str:
    """The SHA-256 of the report's content as canonical JSON."""
    text = json.dumps(_content(report), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_report(policy: PolicySet) -> Report:
    """The sign-off report for every pack in ``policy``, in the packs' order, then the
    agreement-termination rule that the engine adds to every pack."""
    packs = sorted(policy.packs, key=lambda p: p.name)
    rules: list[RuleReport] = []
    pack_reports: list[PackReport] = []
    for pack in packs:
        # The loader names each rule's source "PATH#PACK".
        own = sorted((r for r in policy.rules if r.source == f"{pack.path}#{pack.name}"),
                     key=lambda r: r.id)
        rules.extend(_rule_report(r, pack.name, policy) for r in own)
        pack_reports.append(_pack_report(pack, own))
    rules.append(_termination_report())
    draft = Report(format=REPORT_FORMAT, packs=tuple(pack_reports), rules=tuple(rules),
                   fingerprint="")
    return dataclasses.replace(draft, fingerprint=fingerprint_of(draft))


def _pack_report(pack: Pack, rules: Sequence[Rule]) -> PackReport:
    return PackReport(name=pack.name, title=pack.title, description=" ".join(
        pack.description.split()), requires_local_signoff=pack.requires_local_signoff,
        rules=tuple(r.id for r in rules))


# --- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font-family:Arial,Helvetica,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;
color:#0b0c0c;line-height:1.4}
h1{font-size:1.8em}h2{border-bottom:2px solid #1d70b8;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.8em}code,.fp{font-family:"Courier New",monospace}
.fp{word-break:break-all;background:#f3f2f1;padding:.3em}
blockquote{border-left:5px solid #b1b4b6;margin:.5em 0;padding:.3em 1em;background:#f8f8f8}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #b1b4b6;padding:.3em .5em;
text-align:left;vertical-align:top}th{background:#f3f2f1}
.warn{border:3px solid #d4351c;padding:.5em 1em;color:#d4351c;font-weight:bold}
.rule{page-break-inside:avoid}dt{font-weight:bold;margin-top:.6em}dd{margin-left:0}
.sign td{height:2.5em;min-width:24em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _rule_html(r: RuleReport) -> str:
    parts = [f'<section class="rule" id="{_e(r.id)}"><h3>{_e(r.title)}</h3>',
             f"<p>Rule <code>{_e(r.id)}</code> &middot; category <code>{_e(r.category)}</code>"
             f" &middot; pack {_e(r.pack)}</p>"]
    if r.missing_evidence:
        parts.append('<p class="warn">Not checked against its source: this rule has no '
                     f"{_e(', '.join(r.missing_evidence))}.</p>")
    parts.append("<dl><dt>What the rule does</dt><dd><ul>")
    parts.extend(f"<li>{_e(line)}</li>" for line in r.plain)
    parts.append(f"<li>{_e(r.action)}</li><li>{_e(r.approvals)}</li></ul></dd>")
    if r.same_category:
        parts.append("<dt>Other rules for the same records</dt><dd>"
                     f"{_e(', '.join(r.same_category))}: all apply, and the latest date "
                     "wins.</dd>")
    if r.examples:
        parts.append("<dt>Worked examples (synthetic dates, computed by retentiond)</dt><dd>"
                     "<table><tr><th>case</th><th>facts</th><th>due on</th><th>why</th></tr>")
        for ex in r.examples:
            facts = "; ".join(f"{k} {v}" for k, v in ex.facts)
            parts.append(f"<tr><td>{_e(ex.label)}</td><td>{_e(facts)}</td>"
                         f"<td>{_e(ex.due_on)}</td><td>{_e(ex.why)}</td></tr>")
        parts.append("</table></dd>")
    parts.append(f"<dt>Citation</dt><dd>{_e(r.citation)}</dd>")
    parts.append("<dt>The source's words</dt><dd>" + (
        f"<blockquote>{_e(r.source_quote)}</blockquote>" if r.source_quote
        else "<em>No quotation: see the basis and what the council must decide.</em>")
        + "</dd>")
    if r.source_url:
        parts.append(f'<dt>Where to read them</dt><dd><a href="{_e(r.source_url)}">'
                     f"{_e(r.source_url)}</a></dd>")
    parts.append(f"<dt>Basis</dt><dd>{_e(r.basis_label)}</dd>")
    parts.append("<dt>What the council must decide locally</dt><dd><ul>")
    parts.extend(f"<li>{_e(d)}</li>" for d in r.local_decisions)
    parts.append("</ul></dd></dl></section>")
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (no scripts, no external files)."""
    names = ", ".join(p.name for p in report.packs)
    out = ["<!DOCTYPE html>", '<html lang="en-GB"><head><meta charset="utf-8">',
           f"<title>Retention rules for sign-off: {_e(names)}</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Retention rules for sign-off</h1><p>Packs: {_e(names)}.</p>",
           "<p>This report sets out every rule in the packs named above: what it does in plain "
           "English, worked examples computed by retentiond itself, the source it rests on in "
           "the source's own words, how strong that source is, and what your council must "
           "decide for itself. Read every rule, change the pack where it does not fit your "
           "records or practice, produce the report again, and sign the last page.</p>",
           "<p>Report SHA-256 (its fingerprint, a hash of everything this report says):</p>",
           f'<p class="fp">{report.fingerprint}</p>']
    missing = report.missing_evidence
    if missing:
        out.append(f'<p class="warn">{missing} rule(s) have not been checked against their '
                   "source; they are marked below.</p>")
    for pack in report.packs:
        out.append(f"<h2>Pack {_e(pack.name)}: {_e(pack.title)}</h2>")
        if pack.description:
            out.append(f"<p>{_e(pack.description)}</p>")
        out.append("<p>" + ("This pack must be signed off locally before retentiond will put "
                            "it in force." if pack.requires_local_signoff else
                            "This pack does not require local sign-off to be put in force; "
                            "review it all the same.") + "</p>")
        for rule in report.rules:
            if rule.pack == pack.name:
                out.append(_rule_html(rule))
    out.append("<h2>Built into retentiond</h2>")
    out.extend(_rule_html(r) for r in report.rules if r.pack == "(built in)")
    out.append(_signoff_html(report))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def signoff_lines(report: Report) -> tuple[str, ...]:
    """The sign-off statement and the pack lines to add once it is signed."""
    return (
        "I have read every rule in this report, its source's words and what the council must "
        "decide locally, and I agree that these rules may be put in force for our records.",
        "Once signed, add these lines to the [pack] table of each pack above, then run "
        "'retentiond policies check':",
        'signed_off_by = "NAME, ROLE"',
        "signed_off_on = YYYY-MM-DD",
        f'signed_off_report_sha256 = "{report.fingerprint}"',
    )


def _signoff_html(report: Report) -> str:
    statement, how, *lines = signoff_lines(report)
    rows = "".join(f"<tr><th>{label}</th><td></td></tr>"
                   for label in ("Name", "Role", "Signature", "Date"))
    return (f'<h2>Sign-off</h2><p>{_e(statement)}</p><table class="sign">{rows}</table>'
            f"<p>{_e(how)}</p><pre>{_e(chr(10).join(lines))}</pre>"
            f'<p>Report SHA-256: <span class="fp">{report.fingerprint}</span></p>')
