"""What the review queue's addresses and forms mean: its filter from query parameters, the
``back`` query passed to the record page and back, and the actions a person may take on cases
in a state. Shared by the queue, the record page, exports and saved filters."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from retentiond.web.pages.common import FieldError, filter_date, query_string
from retentiond.web.queries import QueryError, QueueFilter
from retentiond.web.roles import APPROVE, DISCUSS, HOLD, REVIEW, Principal

#: What can be done to cases in each state, in the order the page offers it (``None``: the
#: queue shows every state, so it offers everything and the lifecycle refuses what does not fit).
STATE_ACTIONS: dict[str | None, tuple[str, ...]] = {
    "pending_review": ("approve", "defer", "reject", "hold", "exception", "comment"),
    "approved": ("defer", "reject", "hold", "comment"),
    "cooling_off": ("cancel_cooling", "exception", "reject", "hold", "comment"),
    "exception": ("resume", "defer", "reject", "hold", "comment"),
    "held": ("defer", "reject", "comment"),
    "failed": ("retry", "return", "comment"),
    None: ("approve", "defer", "reject", "hold", "retry", "return", "exception", "resume",
           "cancel_cooling"),
}
ACTION_PERMISSION = {"approve": APPROVE, "defer": REVIEW, "reject": REVIEW, "hold": HOLD,
                     "retry": REVIEW, "return": REVIEW, "exception": DISCUSS,
                     "comment": DISCUSS, "resume": REVIEW, "cancel_cooling": REVIEW}


def actions_for(principal: Principal, state: str | None) -> list[str]:
    """The actions this person may take on cases in ``state``."""
    return [a for a in STATE_ACTIONS.get(state, ()) if principal.can(ACTION_PERMISSION[a])]


def filter_from(params: Any, errors: list[FieldError] | None = None) -> QueueFilter:
    """A queue filter from query parameters (the page's and the API's); QueryError if bad.
    With ``errors``, a date that is not a date is reported there (and left out) instead."""
    found: list[FieldError] = []
    due_from = filter_date(params, "due_from", "'due from' date", found)
    due_to = filter_date(params, "due_to", "'due to' date", found)
    if found and errors is None:
        raise QueryError(f"{found[0].field}: {found[0].text}")
    if errors is not None:
        errors.extend(found)
    limit_text = params.get("limit") or "50"
    if not limit_text.isdigit():
        raise QueryError("limit: must be a whole number")
    # No state at all is the queue's own view, cases pending review; "any" (or empty) is every state.
    state = params.get("state", "pending_review")
    return QueueFilter(
        state=None if state in ("", "any") else state,
        controller=params.get("controller") or None, category=params.get("category") or None,
        rule=params.get("rule") or None, action=params.get("action") or None,
        due_from=due_from, due_to=due_to,
        gone_at_source=params.get("gone_at_source") in ("1", "true", "on"),
        sort=params.get("sort") or "due_on", descending=params.get("order") == "desc",
        limit=int(limit_text), after=params.get("after") or None,
        before=params.get("before") or None,
    )


def back_query(text: str) -> str:
    """A queue query string passed along (to the record page and back), rebuilt from the
    filter it means: whatever else it held is dropped."""
    try:
        return query_string(filter_from(dict(parse_qsl(text))).params())
    except QueryError:
        return query_string(QueueFilter().params())
