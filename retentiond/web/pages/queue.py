"""The review queue: filter, sort, page through (keyset), select many and act in one go."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import review
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.holds import place_hold
from retentiond.registry.models import DISPOSAL_STATES, HOLD_TYPES
from retentiond.text import has_visible
from retentiond.web import queries, redact
from retentiond.web.auth import context_for, current, web_state
from retentiond.web.pages.common import (
    FieldError,
    date_parts,
    parse_date_input,
    query_string,
    redirect,
    render,
)
from retentiond.web.queries import QueryError, QueueFilter

router = APIRouter(include_in_schema=False)


def filter_from(params: Any) -> QueueFilter:
    """A queue filter from query parameters (the page's and the API's); QueryError if bad."""
    def date(name: str) -> dt.date | None:
        value = params.get(name) or ""
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise QueryError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None

    limit_text = params.get("limit") or "50"
    if not limit_text.isdigit():
        raise QueryError("limit: must be a whole number")
    state = params.get("state")
    return QueueFilter(
        state=None if state in (None, "", "any") else state,
        controller=params.get("controller") or None, category=params.get("category") or None,
        rule=params.get("rule") or None, action=params.get("action") or None,
        due_from=date("due_from"), due_to=date("due_to"),
        gone_at_source=params.get("gone_at_source") in ("1", "true", "on"),
        sort=params.get("sort") or "due_on", descending=params.get("order") == "desc",
        limit=int(limit_text), after=params.get("after") or None,
        before=params.get("before") or None,
    )


def _queue_view(request: Request, f: QueueFilter, *, errors: list[FieldError] | None = None,
                selected: set[int] | None = None, form: dict[str, Any] | None = None,
                status_code: int = 200) -> HTMLResponse:
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        page = queries.queue_page(session, f, controller_id=principal.controller_id)
        choices = queries.filter_choices(session, state.policy, controller_id=principal.controller_id)
    page = dataclasses.replace(page, items=redact.cases(principal, page.items))
    base = f.params(after="", before="")
    next_href = "/queue?" + query_string(f.params(after=page.next_cursor, before="")) \
        if page.next_cursor else None
    prev_href = "/queue?" + query_string(f.params(before=page.prev_cursor, after="")) \
        if page.prev_cursor else None
    return render(
        request, "queue.html", title="Review queue", page=page, f=f, choices=choices,
        states=DISPOSAL_STATES, hold_types=HOLD_TYPES, next_href=next_href, prev_href=prev_href,
        export_qs=query_string(base), back=query_string(f.params()),
        error_summary=errors, errors=errors, selected=selected or set(), form=form or {},
        status_code=status_code,
    )


@router.get("/queue", name="queue_page")
def queue_page(request: Request) -> HTMLResponse:
    try:
        f = filter_from(request.query_params)
    except QueryError as exc:
        field = str(exc).split(":", 1)[0]
        return _queue_view(request, QueueFilter(), errors=[FieldError(field, str(exc))],
                           status_code=400)
    return _queue_view(request, f)


async def _act(request: Request, verb: str) -> Response:
    form = await request.form()
    principal = current(request)
    back = str(form.get("back") or "state=pending_review")
    try:
        f = filter_from(dict(parse_qsl(back)))
    except QueryError:
        f = QueueFilter()
    raw_ids = [str(v) for v in form.getlist("ids")]
    errors: list[FieldError] = []
    ids = [int(v) for v in raw_ids if v.isdigit()]
    reason = str(form.get("reason") or "").strip()
    if not ids:
        errors.append(FieldError("ids", "Select at least one case"))
    if not has_visible(reason):
        errors.append(FieldError("reason", "Enter a reason"))
    until = None
    if verb == "defer":
        until = parse_date_input(form, "until", "date to defer until", errors, required=True)
    hold_type = str(form.get("hold_type") or "")
    if verb == "hold" and hold_type not in HOLD_TYPES:
        errors.append(FieldError("hold_type", "Choose the type of hold"))
    ctx = context_for(request)
    state = web_state(request)
    if not errors:
        with state.sessions() as session:
            allowed = queries.disposals_for_ids(session, ids, controller_id=principal.controller_id)
        if len(allowed) != len(set(ids)):
            errors.append(FieldError("ids", "Some of the selected cases do not exist"))
    if not errors:
        try:
            if verb == "approve":
                done = await run_in_threadpool(
                    review.approve, ctx, ids, reason=reason,
                    acknowledge_not_found=form.get("acknowledge_not_found") == "yes")
                approved = sum(1 for d in done if d.state == "approved")
                message = (f"Approval recorded for {len(done)} case(s); {approved} now approved, "
                           f"{len(done) - approved} need another approver.")
            elif verb == "defer":
                assert until is not None
                done = await run_in_threadpool(review.defer, ctx, ids, reason=reason, until=until)
                message = f"Deferred {len(done)} case(s) until {until.isoformat()}."
            elif verb == "reject":
                done = await run_in_threadpool(review.reject, ctx, ids, reason=reason)
                message = f"Rejected {len(done)} case(s): the records are retained."
            else:
                message = await run_in_threadpool(_hold_cases, ctx, ids, hold_type, reason)
        except LifecycleError as exc:
            errors.append(FieldError("ids", str(exc)))
    if errors:
        form_values = {"reason": reason, "until": date_parts(form, "until"), "hold_type": hold_type}
        return _queue_view(request, f, errors=errors, selected=set(ids), form=form_values,
                           status_code=400)
    return redirect("/queue?" + back, flash=message)


def _hold_cases(ctx: Any, ids: list[int], hold_type: str, reason: str) -> str:
    """One record-scoped hold for each selected case's record."""
    with ctx.sessions() as session:
        keys = queries.record_keys_for(session, ids)
    for key in keys:
        place_hold(ctx, scope=f"record:{key}", hold_type=hold_type, reason=reason)
    return f"Placed {len(keys)} hold(s): the cases are held until the holds are lifted."


@router.post("/queue/approve", name="queue_approve")
async def queue_approve(request: Request) -> Response:
    return await _act(request, "approve")


@router.post("/queue/defer", name="queue_defer")
async def queue_defer(request: Request) -> Response:
    return await _act(request, "defer")


@router.post("/queue/reject", name="queue_reject")
async def queue_reject(request: Request) -> Response:
    return await _act(request, "reject")


@router.post("/queue/hold", name="queue_hold")
async def queue_hold(request: Request) -> Response:
    return await _act(request, "hold")
