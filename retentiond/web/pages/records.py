"""The record page: the decision in plain English, the rules considered, holds, history."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.explain import explain
from retentiond.registry.models import HOLD_TYPES
from retentiond.web import queries, redact
from retentiond.web.auth import audit, context_for, current, web_state
from retentiond.web.pages.common import render
from retentiond.web.wording import headline, rule_sentence


def load_record(request: Request, record_key: str) -> dict:  # type: ignore[type-arg]
    """The explanation of one record the user may see; 404 for any other (a controller is
    not told whether another controller's record exists). The view is audited. A user without
    hold details (a controller) sees that the record is held, not why or by whom."""
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        owner = queries.record_controller(session, record_key)
        history = queries.record_history(session, record_key)
    if owner is None or (principal.controller_id is not None and owner != principal.controller_id):
        if owner is not None:
            audit(request, "AccessDenied", "record", record_key, {"why": "another controller's record"})
        raise HTTPException(status_code=404, detail=f"no record {record_key!r}")
    try:
        doc = explain(context_for(request), record_key, as_of=state.clock.today())
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    audit(request, "RecordViewed", "record", record_key)
    doc["record_events"] = [
        {"at": e.occurred_at.isoformat(), "event": e.kind, "actor": e.actor, "reason": e.reason}
        for e in history
    ]
    return redact.record(principal, doc)


router = APIRouter(include_in_schema=False)


@router.get("/records/{record_key:path}", name="record_page")
def record_page(request: Request, record_key: str) -> HTMLResponse:
    doc = load_record(request, record_key)
    return render(request, "record.html", title=f"Record {record_key}", doc=doc,
                  headline=headline(doc), rule_sentence=rule_sentence,
                  hold_types=HOLD_TYPES)
