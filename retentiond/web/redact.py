"""What a user without ``view_hold_details`` (a controller user) is shown of holds: that a
record is held, never the hold's type, reason, author or lift reason.

A hold says why the council keeps something ("police investigation into a member of staff",
"complaint C-2291"): council business, which the controller whose record it is must not read.
Every page and API answer that shows a record or a case passes through here: the record's
holds and history, and a case's reason (which, after a hold, carries the hold's reason or its
lift reason).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from retentiond.lifecycle.holds import is_hold_case_reason
from retentiond.lifecycle.review import DisposalView
from retentiond.web.roles import VIEW_HOLD_DETAILS, Principal

#: Who did it, where a user may not see who placed or lifted a hold.
NOT_SHOWN = "(not shown)"
#: Events that carry a hold's reason, author or lift reason, and the words shown instead.
HOLD_EVENTS = {
    "DisposalHeld": "a hold covers the record",
    "DisposalReturnedToReview": "a hold that covered the record ended",
    "HoldPlaced": "a hold was placed",
    "HoldLifted": "a hold ended",
    "HoldExpired": "a hold ended",
}
HELD_CASE = "a hold covers the record"
ENDED_CASE = "a hold that covered the record ended"


def hold_details_visible(principal: Principal) -> bool:
    return principal.can(VIEW_HOLD_DETAILS)


def case_reason(state: str, reason: str | None) -> str | None:
    """A case's reason as a user without hold details sees it."""
    if not is_hold_case_reason(reason) and state != "held":
        return reason
    return HELD_CASE if state == "held" else ENDED_CASE


def cases(principal: Principal, views: list[DisposalView]) -> list[DisposalView]:
    """Cases as ``principal`` may see them."""
    if hold_details_visible(principal):
        return views
    return [dataclasses.replace(v, reason=case_reason(v.state, v.reason)) for v in views]


def _event(event: dict[str, Any]) -> dict[str, Any]:
    words = HOLD_EVENTS.get(str(event.get("event")))
    if words is None and not is_hold_case_reason(event.get("reason")):
        return event
    return {**event, "actor": NOT_SHOWN, "reason": words or ENDED_CASE}


def record(principal: Principal, doc: dict[str, Any]) -> dict[str, Any]:
    """A record's explanation (``lifecycle.explain``) as ``principal`` may see it: each hold
    that covers it, without its id, scope, type, reason or end; history without who placed or
    lifted a hold, or why."""
    if hold_details_visible(principal):
        return doc
    out = dict(doc)
    out["holds"] = [{"id": None, "scope": None, "type": None, "reason": None, "until": None}
                    for _ in doc.get("holds", [])]
    for key in ("history", "record_events"):
        if key in doc:
            out[key] = [_event(e) for e in doc[key]]
    return out
