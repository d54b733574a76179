"""What a certificate says, in words for the person at a school who reads it: the outcome of
each record, how that was done and checked, the summary by category, the approvals and what
remains. One place for the PDF, the email and the web page, so that they say the same thing.

Everything here reads a signed certificate document (``document.py``); it never adds a fact
the document does not hold.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from retentiond.wording import long_date as _long_date

LONDON = ZoneInfo("Europe/London")

#: The order outcomes are listed in, and their short word.
OUTCOME_WORDS = {
    "returned": "returned to you",
    "deleted": "deleted",
    "anonymised": "anonymised",
    "transferred": "transferred to an archive",
    "manual": "destroyed by hand",
    "confirmed_not_found": "not found (confirmed by a person)",
}

#: What each outcome means and what the service checked: said once, under "How".
OUTCOME_HOW = {
    "returned": "Sent back to you in an encrypted package (listed under \"Returned to you\"), "
                "then deleted from the system that held it; the service then checked that the "
                "system no longer holds it.",
    "deleted": "Deleted from the system that held it; the service then checked that the system "
               "no longer holds it.",
    "anonymised": "Anonymised in the system that holds it, as that system reported to the "
                  "service.",
    "transferred": "Transferred to an archive, then checked to be gone from the system that "
                   "held it.",
    "manual": "Destroyed by hand (paper, or a system the service cannot reach). An officer "
              "confirmed the destruction with the evidence shown: who destroyed it, when, how, "
              "and their certificate number.",
    "confirmed_not_found": "Not found in the system that was to hold it when the service came "
                           "to dispose of it. A person looked into it and confirmed what had "
                           "happened, in the words shown against the record. The service does "
                           "not state that it deleted it.",
}


def outcome(record: dict[str, Any]) -> str:
    """The outcome a record is stated with: ``outcome`` where the document has it (a person's
    finding wins over the action), else what the action did."""
    found = record.get("outcome")
    if found == "confirmed_not_found":
        return "confirmed_not_found"
    if record.get("action") == "manual":
        return "manual"
    return str(found or record.get("action"))


def outcome_word(record: dict[str, Any]) -> str:
    key = outcome(record)
    return OUTCOME_WORDS.get(key, key)


def category_word(doc: dict[str, Any], code: str) -> str:
    return str((doc.get("categories") or {}).get(code) or code)


def plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def counts_in_words(counter: Counter[str]) -> str:
    """``2 deleted, 1 returned to you`` in the order of :data:`OUTCOME_WORDS`."""
    order = list(OUTCOME_WORDS)
    keys = sorted(counter, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(f"{counter[k]:,} {OUTCOME_WORDS.get(k, k)}" for k in keys)


def outcomes(doc: dict[str, Any]) -> Counter[str]:
    return Counter(outcome(r) for r in doc["records"])


def summary(doc: dict[str, Any]) -> str:
    """``4 records: 2 deleted, 1 returned to you, 1 destroyed by hand``."""
    return f"{plural(len(doc['records']), 'record')}: {counts_in_words(outcomes(doc))}"


def title(doc: dict[str, Any]) -> str:
    """The certificate's title: a return is not called a disposal."""
    kinds = set(outcomes(doc))
    if kinds == {"returned"}:
        return "Certificate of return"
    if "returned" in kinds:
        return "Certificate of return and disposal"
    return "Certificate of disposal"


@dataclass(frozen=True, kw_only=True)
class CategoryRow:
    category: str
    code: str
    records: int
    done: str


def by_category(doc: dict[str, Any]) -> list[CategoryRow]:
    """One row per category: its name in words, how many records, what was done to them."""
    groups: dict[str, Counter[str]] = {}
    for r in doc["records"]:
        groups.setdefault(r["category"], Counter())[outcome(r)] += 1
    rows = [CategoryRow(category=category_word(doc, code), code=code, records=sum(c.values()),
                        done=counts_in_words(c)) for code, c in groups.items()]
    return sorted(rows, key=lambda row: (row.category, row.code))


@dataclass(frozen=True, kw_only=True)
class RuleRow:
    id: str
    title: str
    citation: str
    records: int
    policy_versions: tuple[str, ...]


def rules(doc: dict[str, Any]) -> list[RuleRow]:
    """The rules records were disposed of under, with their citations."""
    found: dict[str, dict[str, Any]] = {}
    for r in doc["records"]:
        rule = r.get("rule") or {}
        entry = found.setdefault(str(rule.get("id")), {"rule": rule, "n": 0, "versions": set()})
        entry["n"] += 1
        entry["versions"].add(str(r.get("policy_version")))
    return sorted((RuleRow(id=rid, title=str(e["rule"].get("title") or rid),
                           citation=str(e["rule"].get("citation") or "no citation recorded"),
                           records=e["n"], policy_versions=tuple(sorted(e["versions"])))
                   for rid, e in found.items()), key=lambda row: row.title)


def approvals(doc: dict[str, Any]) -> str:
    """How the records were approved: how many people each, and in which roles."""
    people = Counter(len(set(r.get("approved_by") or ())) for r in doc["records"])
    roles = sorted({role for r in doc["records"] for role in r.get("approver_roles") or ()})
    parts = []
    for n in sorted(people):
        count = people[n]
        who = "no recorded approval" if n == 0 else (
            "one person" if n == 1 else f"{n} different people")
        parts.append(f"{plural(count, 'record')} by {who}")
    text = "Approved before anything was done: " + "; ".join(parts) + "."
    if roles:
        text += f" The approvers acted as: {', '.join(roles)}."
    return text


def agreement_line(a: dict[str, Any]) -> str:
    text = f"{a.get('title')} ({a.get('code')})"
    if a.get("terminated_on"):
        text += (f", ended on {long_date(a['terminated_on'])} under clause "
                 f"{a.get('clause') or '13.1'} (termination)")
    return text


def remaining(doc: dict[str, Any]) -> list[str] | None:
    """What remains and until when, one line each; an empty list when the holding systems
    declared nothing remains; None when the certificate makes no statement about it."""
    if "remaining_copies" not in doc:
        return None
    lines = []
    for c in doc.get("remaining_copies") or []:
        what = c.get("what") or "copies"
        until = f" expire by {long_date(c['expire_by'])}" if c.get("expire_by") else \
            " (no date by which they expire was stated)"
        lines.append(f"{what[:1].upper()}{what[1:]} held by {c.get('system')}{until}")
    return lines


def long_date(iso: str | dt.date | None) -> str:
    """``2026-11-22`` -> ``22 November 2026``; ``-`` for nothing."""
    return _long_date(iso[:10] if isinstance(iso, str) else iso) or "-"


def local_time(iso: str, *, date: bool = True) -> str:
    """An ISO instant as UK time: ``22 November 2026 at 10:31`` (or ``10:31``)."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LONDON)
    return (f"{t.day} {t.strftime('%B %Y')} at " if date else "") + t.strftime("%H:%M")


def period(doc: dict[str, Any]) -> str:
    """When the records were dealt with, UK time."""
    span = doc.get("carried_out")
    if not span:
        return "-"
    start, end = span["from"], span["to"]
    first = dt.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(LONDON).date()
    last = dt.datetime.fromisoformat(end.replace("Z", "+00:00")).astimezone(LONDON).date()
    if start == end:
        return f"{local_time(start)} (UK time)"
    if first == last:
        return (f"{long_date(first)}, between {local_time(start, date=False)} and "
                f"{local_time(end, date=False)} (UK time)")
    return f"between {local_time(start)} and {local_time(end)} (UK time)"


def returned_packages(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The returned records with their packages, in the document's order."""
    return [r for r in doc["records"] if outcome(r) == "returned" and r.get("package_sha256")]


def with_outcome(doc: dict[str, Any], key: str) -> Iterable[dict[str, Any]]:
    return (r for r in doc["records"] if outcome(r) == key)
