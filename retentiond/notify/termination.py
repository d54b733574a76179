"""The notice to a controller when an agreement it provided data under is terminated (seed
003, clause 13.1): at once, what will come back (counts by category), how (the package
format, where to collect it, how the password is agreed) and by when (the termination date
plus the notice period).

Queued in the outbox in the transaction that terminates the agreement, one per controller
with records under it and channel, so a termination is never recorded without its notices.
Counts only: no record reference, no date that follows from a child's facts.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from retentiond.lifecycle.agreements import TerminationNotices
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.sql import DONE_STATES
from retentiond.notify.recipients import controller_channels
from retentiond.notify.settings import NotifySettings
from retentiond.policy.engine import TERMINATION_CITATION, TERMINATION_RULE_ID
from retentiond.registry.models import (
    Agreement,
    Controller,
    ControllerSettings,
    Disposal,
    Notification,
    Record,
)
from retentiond.wording import long_date, wrap

KIND = "termination_notice"
CLAUSE = "13.1"

#: How returned data is packed, in words for a school.
FORMAT_WORDS = {
    "xlsx": "a password-protected Excel workbook (.xlsx, encrypted with AES-256), one for "
            "each record",
    "zip": "a password-protected ZIP file (encrypted with AES-256), one for each record; the "
           "file names inside are numbers, and manifest.json inside gives each one's name",
    "auto": "a password-protected Excel workbook (.xlsx) for each record held as data, or a "
            "password-protected ZIP file for each record that includes documents (both "
            "encrypted with AES-256; in a ZIP the file names are numbers, and manifest.json "
            "inside gives each one's name)",
}


def termination_notices(ctx: Context, *, issuer: str | None) -> TerminationNotices:
    """What ``lifecycle.agreements.terminate_agreement`` calls, in its transaction, to tell
    each controller what comes back, from ``issuer``."""
    return functools.partial(queue_termination_notices, ctx, issuer=issuer)


def queue_termination_notices(ctx: Context, session: Session, agreement: Agreement,
                              now: dt.datetime, *, issuer: str | None) -> int:
    """Queue the notice to each controller with records under ``agreement`` (just
    terminated, its records recomputed); returns how many outbox rows were written."""
    done = exists().where(Disposal.record_id == Record.id, Disposal.state.in_(DONE_STATES))
    rows = session.execute(
        select(Record.controller_id, Record.category, Record.due_rule, Record.due_action,
               func.count())
        .where(Record.agreement_id == agreement.id, ~done)
        .group_by(Record.controller_id, Record.category, Record.due_rule, Record.due_action)
        .order_by(Record.controller_id)).all()
    by_controller: dict[int, dict[str, Counter[str]]] = {}
    for controller_id, category, rule, action, n in rows:
        buckets = by_controller.setdefault(controller_id, {"termination": Counter(),
                                                           "own_rule": Counter()})
        bucket = "termination" if rule == TERMINATION_RULE_ID else "own_rule"
        buckets[bucket][f"{category}|{action or 'review'}"] += int(n)
    queued = 0
    for controller_id, buckets in by_controller.items():
        controller = session.get_one(Controller, controller_id)
        payload: dict[str, Any] = {
            "type": "retentiond.termination-notice", "issuer": issuer,
            "controller": {"code": controller.code, "name": controller.name},
            "agreement": {"code": agreement.code, "title": agreement.title},
            "clause": CLAUSE, "citation": TERMINATION_CITATION,
            "terminated_on": agreement.terminated_on.isoformat()
            if agreement.terminated_on else None,
            "notice_months": agreement.notice_months,
            "due_by": agreement.disposal_due_on.isoformat()
            if agreement.disposal_due_on else None,
            "action": agreement.termination_action,
            "categories": {},
            "at_termination": [], "under_own_rules": [],
        }
        for bucket, key in (("termination", "at_termination"), ("own_rule", "under_own_rules")):
            for label, n in sorted(buckets[bucket].items()):
                category, action = label.split("|")
                payload["categories"][category] = ctx.policy.category_label(category)
                payload[key].append({"category": category, "action": action, "records": n})
        for channel, target in controller_channels(
                controller, session.get(ControllerSettings, controller_id)):
            session.add(Notification(
                kind=KIND, controller_id=controller_id, channel=channel, target=target,
                state="pending", attempts=0, next_attempt_at=now,
                idempotency_key=f"termination:{agreement.code}:{controller.code}:{channel}",
                payload=payload, created_at=now, updated_at=now))
            queued += 1
    return queued


def _count(items: list[dict[str, Any]], action: str | None = None) -> int:
    return sum(int(i["records"]) for i in items if action is None or i["action"] == action)


def return_how(settings: NotifySettings, contact: str) -> list[str]:
    """How returned data reaches a school: the format, where to collect it, the password."""
    fmt = settings.return_format
    lines = [f"  How:       {FORMAT_WORDS.get(fmt, fmt)}." if fmt else
             f"  How:       not set up yet: ask {contact}."]
    lines.append(f"  Where:     {settings.return_collection}." if settings.return_collection
                 else f"  Where:     ask {contact} where to collect them.")
    lines.append(f"  Password:  {settings.return_password_method}."
                 if settings.return_password_method
                 else f"  Password:  ask {contact} how the password reaches you; it is never "
                      "sent with the package.")
    return lines


def termination_text(p: dict[str, Any], settings: NotifySettings) -> tuple[str, str]:
    """(subject, plain text) of a termination notice."""

    name, agreement = p["controller"]["name"], p["agreement"]
    issuer = p.get("issuer") or settings.sender
    at_end, earlier = p["at_termination"], p["under_own_rules"]
    returned = _count(at_end, "return")
    due_by = long_date(p["due_by"])
    words = p.get("categories") or {}
    lines = [
        f"To the data protection officer of {name},",
        "",
        f"The information sharing agreement \"{agreement['title']}\" ({agreement['code']}) was "
        f"terminated on {long_date(p['terminated_on'])}. Under clause {p['clause']} of the "
        "agreement, the information your organisation provided under it is securely returned "
        f"to you at the end of the notice period of {p['notice_months']} month(s): by "
        f"{due_by}.",
        "",
    ]
    if returned:
        lines += [f"What will come back to you: {returned:,} record(s)"]
        lines += [f"  {i['records']:>7,}  {words.get(i['category'], i['category'])}"
                  for i in at_end if i["action"] == "return"]
        lines += ["", *return_how(settings, issuer), f"  By when:   {due_by}.", ""]
        lines += ["With each return you will receive a signed certificate naming each package "
                  "and its SHA-256, so that you can check what you collect.", ""]
    other = [i for i in at_end if i["action"] != "return"]
    if other:
        lines += [f"The agreement says the rest is not returned: {_count(other):,} record(s) "
                  f"will be disposed of by {due_by} and stated on a disposal certificate:"]
        lines += [f"  {i['records']:>7,}  {words.get(i['category'], i['category'])} "
                  f"({i['action']})" for i in other]
        lines.append("")
    if earlier:
        lines += [f"{_count(earlier):,} record(s) fall due sooner under their own retention "
                  "rule and are dealt with then, as that rule says; you will receive a "
                  "certificate for them."]
        lines.append("")
    lines += ["A record under a legal hold is kept until the hold ends; you will be told when "
              "it comes back.", "", f"{issuer}", "(sent automatically by retentiond)"]
    subject = (f"Agreement {agreement['code']} terminated: what comes back to {name} by "
               f"{due_by}")
    return subject, wrap(lines)
