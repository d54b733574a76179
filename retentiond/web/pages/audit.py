"""The audit trail: search (newest first, keyset-paged, with counts) and export as CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from retentiond.web import queries
from retentiond.web.auth import web_state
from retentiond.web.pages.common import (
    FieldError,
    date_parts,
    filter_date,
    parts_of,
    query_string,
    render,
)
from retentiond.web.wording import event_label

router = APIRouter(include_in_schema=False)
ENTITIES = (("disposal", "A case"), ("hold", "A hold"), ("record", "A record"),
            ("user", "A user"), ("filter", "A saved filter"), ("certificate", "A certificate"),
            ("route", "A page or API call"), ("evaluation", "An evaluation"),
            ("import", "An import"), ("export", "An export"), ("policy", "A policy"))
#: Parameters that say which page, not what is searched for.
PAGING = ("before_id", "after_id")


def audit_filter(params: Any, errors: list[FieldError] | None = None) -> queries.AuditFilter:
    """The search from query parameters; dates as a date input's parts or ISO (the API and
    the export link). A date that is not a date is reported in ``errors`` and left out."""
    found: list[FieldError] = []
    since = filter_date(params, "since", "'from' date", found)
    until = filter_date(params, "until", "'to' date", found)
    if errors is not None:
        errors.extend(found)
        if since and until and since > until:
            errors.append(FieldError("until", "The 'to' date must be the same as or after the "
                                              "'from' date", "until-day"))
    before, after = params.get("before_id") or "", params.get("after_id") or ""
    limit = params.get("limit") or "100"
    return queries.AuditFilter(
        kind=params.get("kind") or None, actor=params.get("actor") or None,
        entity=params.get("entity") or None, entity_id=params.get("entity_id") or None,
        since=since, until=until,
        before_id=int(before) if before.isdigit() and len(before) < 19 else None,
        after_id=int(after) if after.isdigit() and len(after) < 19 else None,
        limit=min(int(limit), 1000) if limit.isdigit() and int(limit) > 0 else 100,
    )


def search_params(f: queries.AuditFilter) -> dict[str, str]:
    """The search as query parameters (ISO dates), without the page position."""
    return {k: v for k, v in {
        "kind": f.kind or "", "actor": f.actor or "", "entity": f.entity or "",
        "entity_id": f.entity_id or "", "since": f.since.isoformat() if f.since else "",
        "until": f.until.isoformat() if f.until else "",
        "limit": str(f.limit) if f.limit != 100 else ""}.items() if v}


@router.get("/audit", name="audit_page")
def audit_page(request: Request) -> HTMLResponse:
    errors: list[FieldError] = []
    f = audit_filter(request.query_params, errors)
    state = web_state(request)
    with state.sessions() as session:
        page = queries.audit_page(session, f)
        kinds = queries.audit_kinds(session)
    params = search_params(f)
    items = page.items
    next_href = ("/audit?" + query_string({**params, "before_id": str(items[-1].id)})
                 if items and page.older else None)
    prev_href = ("/audit?" + query_string({**params, "after_id": str(items[0].id)})
                 if items and page.newer else None)
    dates = {name: date_parts(request.query_params, name) if errors else parts_of(getattr(f, name))
             for name in ("since", "until")}
    return render(request, "audit.html", title="Audit trail", page=page, f=f,
                  kinds=sorted(((k, event_label(k)) for k in kinds), key=lambda o: o[1]),
                  entities=ENTITIES, next_href=next_href, prev_href=prev_href,
                  export_qs=query_string(params), dates=dates,
                  error_summary=errors or None, errors=errors, status_code=400 if errors else 200)
