"""The audit trail: search (newest first, keyset-paged) and export as CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from retentiond.web import queries
from retentiond.web.auth import web_state
from retentiond.web.pages.common import FieldError, parse_iso, query_string, render

router = APIRouter(include_in_schema=False)


def audit_filter(params: Any, errors: list[FieldError] | None = None) -> queries.AuditFilter:
    def day(name: str) -> dt.date | None:
        value = params.get(name) or ""
        parsed = parse_iso(value)
        if value and parsed is None and errors is not None:
            errors.append(FieldError(name, f"{name}: {value!r} is not a date (YYYY-MM-DD)"))
        return parsed

    before = params.get("before_id") or ""
    limit = params.get("limit") or "100"
    return queries.AuditFilter(
        kind=params.get("kind") or None, actor=params.get("actor") or None,
        entity=params.get("entity") or None, entity_id=params.get("entity_id") or None,
        since=day("since"), until=day("until"),
        before_id=int(before) if before.isdigit() else None,
        limit=min(int(limit), 1000) if limit.isdigit() and int(limit) > 0 else 100,
    )


@router.get("/audit", name="audit_page")
def audit_page(request: Request) -> HTMLResponse:
    errors: list[FieldError] = []
    f = audit_filter(request.query_params, errors)
    state = web_state(request)
    with state.sessions() as session:
        events = queries.audit_events(session, f)
        kinds = queries.audit_kinds(session)
    params = {k: str(v) for k, v in request.query_params.items() if k != "before_id"}
    next_href = ("/audit?" + query_string({**params, "before_id": str(events[-1].id)})
                 if len(events) == f.limit else None)
    return render(request, "audit.html", title="Audit trail", events=events, f=f, kinds=kinds,
                  next_href=next_href, export_qs=query_string(params),
                  error_summary=errors or None, errors=errors, status_code=400 if errors else 200)
