"""Exports of lists: the queue as CSV or pseudonymised password-protected XLSX, the holds
register and the audit trail as CSV. Every export is an audit event."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.holds import list_holds
from retentiond.web import exports, queries, redact
from retentiond.web.auth import audit, context_for, current, web_state
from retentiond.web.pages.audit import audit_filter
from retentiond.web.pages.common import FieldError
from retentiond.web.pages.queue import _queue_view
from retentiond.web.pages.queue_params import filter_from
from retentiond.web.queries import QueryError, QueueFilter

router = APIRouter(include_in_schema=False)


def _stamp(request: Request) -> str:
    return web_state(request).clock.now().strftime("%Y%m%d-%H%M%S")


def _download(body: str | bytes, filename: str, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _queue_rows(request: Request, f: QueueFilter) -> list[dict[str, object]]:
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        views = queries.queue_all(session, f, controller_id=principal.controller_id,
                                  reviewer=principal.username)
    return [v.as_json() for v in redact.cases(principal, views)]


@router.get("/queue/export.csv", name="queue_export_csv")
def queue_export_csv(request: Request) -> Response:
    try:
        f = filter_from(request.query_params)
    except QueryError as exc:
        return Response(str(exc), status_code=400, media_type="text/plain")
    rows = _queue_rows(request, f)
    audit(request, "DisposalsExported", "export", "queue.csv",
          {"format": "csv", "rows": len(rows), "filter": f.params(after="", before="")})
    return _download(exports.to_csv(exports.DISPOSAL_COLUMNS, rows),
                     f"disposals-{_stamp(request)}.csv", "text/csv; charset=utf-8")


@router.post("/queue/export.xlsx", name="queue_export_xlsx")
async def queue_export_xlsx(request: Request) -> Response:
    form = await request.form()
    password = str(form.get("password") or "")
    try:
        f = filter_from(request.query_params)
    except QueryError:
        f = QueueFilter()
    if len(password) < exports.MIN_EXPORT_PASSWORD:
        errors = [FieldError("export_password", "Choose an export password of 10 characters or more")]
        return await run_in_threadpool(_queue_view, request, f, errors=errors, status_code=400)
    rows = await run_in_threadpool(_queue_rows, request, f)
    key = web_state(request).export_key
    data = await run_in_threadpool(lambda: exports.to_protected_xlsx(
        exports.DISPOSAL_COLUMNS, rows, password=password, key=key, sheet="Disposals"))
    await run_in_threadpool(audit, request, "DisposalsExported", "export", "queue.xlsx",
                            {"format": "xlsx", "rows": len(rows), "pseudonymised": True,
                             "filter": f.params(after="", before="")})
    return _download(data, f"disposals-{_stamp(request)}.xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@router.get("/holds/export.csv", name="holds_export_csv")
def holds_export_csv(request: Request, all: bool = False) -> Response:
    holds = [h.as_json() for h in list_holds(context_for(request), include_lifted=all)]
    audit(request, "HoldsExported", "export", "holds.csv", {"rows": len(holds)})
    return _download(exports.to_csv(exports.HOLD_COLUMNS, holds), f"holds-{_stamp(request)}.csv",
                     "text/csv; charset=utf-8")


@router.get("/audit/export.csv", name="audit_export_csv")
def audit_export_csv(request: Request) -> Response:
    f = audit_filter(request.query_params)
    f = queries.AuditFilter(**{**f.__dict__, "limit": 100_000})
    with web_state(request).sessions() as session:
        events = queries.audit_events(session, f)
    rows = [{"id": e.id, "occurred_at": e.occurred_at.isoformat(), "kind": e.kind,
             "actor": e.actor, "entity": e.entity, "entity_id": e.entity_id, "reason": e.reason,
             "policy_version": e.policy_version, "data": e.data} for e in events]
    audit(request, "AuditExported", "export", "audit.csv", {"rows": len(rows)})
    return _download(exports.to_csv(exports.AUDIT_COLUMNS, rows),
                     f"audit-{_stamp(request)}.csv", "text/csv; charset=utf-8")
