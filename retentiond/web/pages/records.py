"""The record page: the decision in plain English, what can be done now, the rules
considered, holds, history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.explain import explain
from retentiond.registry.models import HOLD_TYPES
from retentiond.web import queries, redact
from retentiond.web.auth import audit, context_for, current, web_state
from retentiond.web.pages.common import FieldError, render
from retentiond.web.pages.queue_params import actions_for, back_query
from retentiond.web.pages.task_info import task_context
from retentiond.web.roles import HOLD, REVIEW
from retentiond.web.wording import HOLD_TYPE_LABELS, headline, rule_sentence

#: Views are audit events like any other, but a history an officer reads for decisions
#: would drown in them: shown only when asked for (issue 15, item 8).
VIEW_EVENTS = frozenset({"RecordViewed"})


def load_record(request: Request, record_key: str) -> dict:  # type: ignore[type-arg]
    """The explanation of one record the user may see; 404 for any other (a controller is
    not told whether another controller's record exists). The view is audited. A user without
    hold details (a controller) sees that the record is held, not why or by whom."""
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        owner = queries.record_controller(session, record_key)
        scoped_out = owner is not None and not queries.record_in_scope(
            session, record_key, principal.username)
    if owner is None or (principal.controller_id is not None and owner != principal.controller_id):
        if owner is not None:
            audit(request, "AccessDenied", "record", record_key, {"why": "another controller's record"})
        raise HTTPException(status_code=404, detail=f"no record {record_key!r}")
    if scoped_out:
        audit(request, "AccessDenied", "record", record_key, {"why": "outside the review scope"})
        raise HTTPException(status_code=404, detail=f"no record {record_key!r}")
    try:
        doc = explain(context_for(request), record_key, as_of=state.clock.today())
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    audit(request, "RecordViewed", "record", record_key)
    with state.sessions() as session:  # after the audit: this view is in the history too
        history = queries.record_history(session, record_key)
    doc["record_events"] = [
        {"at": e.occurred_at.isoformat(), "event": e.kind, "actor": e.actor, "reason": e.reason}
        for e in history
    ]
    return redact.record(principal, doc)


router = APIRouter(include_in_schema=False)


def record_view(request: Request, record_key: str, *, back: str, show_views: bool = False,
                errors: list[FieldError] | None = None, form: dict[str, Any] | None = None,
                status_code: int = 200, came_from: str = "") -> HTMLResponse:
    """The page; the queue's actions and the task forms render it again, with their errors,
    when one is refused. ``came_from`` is ``tasks`` when it was opened from the Tasks page
    (its back link and its task forms go back there)."""
    doc = load_record(request, record_key)
    principal = current(request)
    case = doc.get("disposal")
    task = task_context(request, case["id"]) if case is not None and principal.can(REVIEW) \
        and case["state"] == "pending_confirmation" else {}
    if case is not None:
        actions = actions_for(principal, case["state"])
        # The same person cannot approve twice: say so instead of offering a refusal.
        if principal.username in case["approved_by"]:
            actions = [a for a in actions if a != "approve"]
        # A staged case: only a member of the group it waits for may approve it.
        if case.get("stage_words") and principal.username not in case.get("may_act", []):
            actions = [a for a in actions if a != "approve"]
    else:
        # No live case (not due, deferred, rejected): a hold is all that can be placed.
        actions = ["hold"] if principal.can(HOLD) else []
    events = sorted(doc["history"] + doc["record_events"], key=lambda e: e["at"])
    views = [e for e in events if e["event"] in VIEW_EVENTS]
    if not show_views:
        events = [e for e in events if e["event"] not in VIEW_EVENTS]
    return render(request, "record.html", title=f"Record {record_key}", doc=doc,
                  headline=headline(doc), rule_sentence=rule_sentence, case=case,
                  hold_types=[(t, HOLD_TYPE_LABELS[t]) for t in HOLD_TYPES],
                  actions=actions, back=back, events=events, views=len(views),
                  show_views=show_views, error_summary=errors, errors=errors,
                  form=form or {}, status_code=status_code,
                  came_from="tasks" if came_from == "tasks" else "", **task)


@router.get("/records/{record_key:path}", name="record_page")
def record_page(request: Request, record_key: str, back: str = "", views: str = "",
                came_from: Annotated[str, Query(alias="from", max_length=20)] = ""
                ) -> HTMLResponse:
    return record_view(request, record_key, back=back_query(back), show_views=views == "show",
                       came_from=came_from)
