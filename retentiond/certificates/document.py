"""The certificate document: what it states, built from facts with no I/O.

The document is a JSON object. Its canonical form (sorted keys, no spaces, UTF-8) is the JWS
payload, and the SHA-256 of those bytes is the certificate's hash, which the next certificate
of the same controller names as ``previous.sha256``. The layout is in ``docs/certificates.md``.

It never holds personal data: records are named by their reference in the register (an
opaque key), never by locator, subject reference, name or date of birth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DOCUMENT_TYPE = "retentiond.disposal-certificate"
#: 1: one JWS, per-record due dates and times (no longer issued; still verified).
#: 2: numbered parts, no date that follows from a child's facts (docs/certificates.md).
DOCUMENT_VERSION = 2

#: The action a disposal asked for -> the word the certificate states.
ACTION_WORDS = {
    "delete": "deleted",
    "return": "returned",
    "anonymise": "anonymised",
    "transfer": "transferred",
}

#: The clause of the agreement that governs termination (seed 003, clause 13.1).
TERMINATION_CLAUSE = "13.1"

STATEMENT = (
    "The issuer certifies that it dealt with each record listed in this certificate as stated "
    "against it, in the period shown, under the retention rule and policy version given for "
    "it, and with the approvals recorded for it. Copies that outlive a deletion are stated "
    "where the holding system declares them; nothing is said of copies beyond those."
)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """A person's confirmation of a manual destruction (paper, systems with no interface)."""

    destroyed_by: str | None
    destroyed_on: dt.date | None
    method: str | None
    certificate_no: str | None
    confirmed_by: str | None
    confirmed_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class ItemFacts:
    """One executed disposal, as the registry knows it.

    It holds no date that follows from the child's facts: not the due date (a pupil record's
    is the 25th birthday), and the time of execution only for the certificate's period."""

    disposal_id: int
    record: str
    category: str
    agreement: str | None
    rule_id: str
    rule_title: str | None = None
    citation: str | None
    policy_version: str
    action: str
    manual: bool
    method: str | None
    verification: str | None
    systems: tuple[str, ...]
    package_name: str | None = None
    package_sha256: str | None
    evidence: Evidence | None
    executed_at: dt.datetime
    approved_by: tuple[str, ...]
    #: The role each approver acted in, in the order of ``approved_by``.
    approver_roles: tuple[str, ...] = ()
    #: What the service states was done (:data:`OUTCOMES`); None: said by the action, as
    #: before outcomes were recorded.
    outcome: str | None = None
    #: For ``confirmed_not_found``: the person's evidence, in their words.
    outcome_note: str | None = None


#: What a certificate may state of a record (docs/certificates.md, "What each outcome means"): ``deleted``
#: only where this service deleted exactly the record's data and then saw it gone.
OUTCOMES = ("deleted", "returned", "anonymised", "transferred", "destroyed_by_hand",
            "confirmed_not_found")


@dataclass(frozen=True, kw_only=True)
class AgreementFacts:
    """An agreement a certificate's records were provided under."""

    code: str
    title: str
    terminated_on: dt.date | None = None


@dataclass(frozen=True, kw_only=True)
class ChainLink:
    """The certificate before this one in the controller's chain."""

    serial: str
    sequence: int
    sha256: str


def _iso(t: dt.datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("naive datetime in a certificate")
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def action_word(item: ItemFacts) -> str:
    """What the certificate says was done: deleted, returned, anonymised, transferred, manual,
    or confirmed_not_found (never "deleted" for data this service did not find)."""
    if item.outcome == "confirmed_not_found":
        return "confirmed_not_found"
    if item.manual:
        return "manual"
    return ACTION_WORDS.get(item.action, item.action)


def item_outcome(item: ItemFacts) -> str:
    """The item's outcome: as recorded, else what its action did (executions before 0009)."""
    if item.outcome is not None:
        return item.outcome
    return "destroyed_by_hand" if item.manual else ACTION_WORDS.get(item.action, item.action)


def item_json(item: ItemFacts) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "record": item.record,
        "category": item.category,
        "agreement": item.agreement,
        "rule": {"id": item.rule_id, "title": item.rule_title, "citation": item.citation},
        "policy_version": item.policy_version,
        "action": action_word(item),
        "requested_action": item.action,
        "method": item.method,
        "verification": item.verification,
        "systems": list(item.systems),
        "approved_by": list(item.approved_by),
        "approver_roles": list(item.approver_roles),
        "disposal_id": item.disposal_id,
        "outcome": item_outcome(item),
        "outcome_note": item.outcome_note,
    }
    if item.package_sha256 is not None:
        doc["package_sha256"] = item.package_sha256
        doc["package_name"] = item.package_name
    if item.evidence is not None:
        e = item.evidence
        doc["evidence"] = {
            "destroyed_by": e.destroyed_by,
            "destroyed_on": e.destroyed_on.isoformat() if e.destroyed_on else None,
            "method": e.method,
            "certificate_no": e.certificate_no,
            "confirmed_by": e.confirmed_by,
            "confirmed_at": _iso(e.confirmed_at) if e.confirmed_at else None,
        }
    return doc


def record_order(record: dict[str, Any]) -> tuple[str, str]:
    """The order records are listed in, on every page and in every part: by category, then
    by reference (stable whatever order they were executed in)."""
    return (str(record.get("category")), str(record.get("record")))


def totals(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts a reader can check against the list."""
    return {
        "records": len(records),
        "by_action": dict(sorted(Counter(r["action"] for r in records).items())),
        "by_category": dict(sorted(Counter(r["category"] for r in records).items())),
    }


def _agreement_json(a: AgreementFacts) -> dict[str, Any]:
    doc: dict[str, Any] = {"code": a.code, "title": a.title}
    if a.terminated_on is not None:
        doc["terminated_on"] = a.terminated_on.isoformat()
        doc["clause"] = TERMINATION_CLAUSE
    return doc


def build_document(*, serial: str, sequence: int, batch: str, issued_at: dt.datetime,
                   issuer: str, issuer_contact: str | None, controller_code: str,
                   controller_name: str, agreements: Sequence[AgreementFacts],
                   items: Sequence[ItemFacts], categories: dict[str, str] | None = None,
                   previous: ChainLink | None, audit_head: tuple[int, str] | None,
                   software: str,
                   remaining_copies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole certificate as a JSON-ready dict, records in :func:`record_order`.

    ``categories`` gives each category code its name in words (for the page). The period
    ``carried_out`` spans the executions; no record carries a date of its own that follows
    from the child's facts (docs/certificates.md, "What a reader cannot work out").
    ``remaining_copies`` (``[{"system", "what", "expire_by", "basis"}]``) says what outlives
    the disposals in the holding systems, and until when; it is always stated, never left
    out."""
    records = sorted((item_json(i) for i in items), key=record_order)
    times = sorted(i.executed_at for i in items)
    used = {r["category"] for r in records}
    return {
        "type": DOCUMENT_TYPE,
        "version": DOCUMENT_VERSION,
        "serial": serial,
        "sequence": sequence,
        "batch": batch,
        "issued_at": _iso(issued_at),
        "issuer": {"name": issuer, "contact": issuer_contact, "software": software},
        "controller": {"code": controller_code, "name": controller_name},
        "agreements": [_agreement_json(a) for a in sorted(agreements, key=lambda a: a.code)],
        "statement": STATEMENT,
        "carried_out": {"from": _iso(times[0]), "to": _iso(times[-1])} if times else None,
        "categories": {c: w for c, w in sorted((categories or {}).items()) if c in used},
        "records": records,
        "remaining_copies": list(remaining_copies),
        "totals": totals(records),
        "previous": None if previous is None else {
            "serial": previous.serial, "sequence": previous.sequence, "sha256": previous.sha256,
        },
        "audit_head": None if audit_head is None else {
            "seq": audit_head[0], "sha256": audit_head[1],
        },
    }


def canonical(doc: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and hashed."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def document_hash(doc: dict[str, Any]) -> str:
    """The certificate's hash: SHA-256 of its canonical form, hex."""
    return hashlib.sha256(canonical(doc)).hexdigest()


def check_consistency(doc: dict[str, Any]) -> list[str]:
    """Problems a reader would find in a (signed) document: totals that do not add up, a
    malformed chain link. Empty when consistent."""
    problems = []
    if doc.get("type") != DOCUMENT_TYPE:
        problems.append(f"type is {doc.get('type')!r}, not {DOCUMENT_TYPE!r}")
        return problems
    records = doc.get("records")
    if not isinstance(records, list):
        return ["records is not a list"]
    try:
        expected = totals(records)
    except (KeyError, TypeError):
        return ["a record lacks its action or category"]
    if doc.get("totals") != expected:
        problems.append(f"totals {doc.get('totals')} do not match the records listed {expected}")
    seq = doc.get("sequence")
    prev = doc.get("previous")
    if seq == 1 and prev is not None:
        problems.append("the first certificate of a chain names a previous one")
    if isinstance(seq, int) and seq > 1 and prev is None:
        problems.append(f"certificate number {seq} names no previous certificate")
    return problems
