"""Holds: the register, placing one (scope, type, reason, optional end date), lifting one
with a reason, and what each covers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import list_filters
from retentiond.lifecycle.holds import lift_hold, list_holds, place_hold
from retentiond.registry.models import HOLD_SCOPES, HOLD_TYPES
from retentiond.text import has_visible
from retentiond.web import queries
from retentiond.web.auth import context_for, web_state
from retentiond.web.pages.common import FieldError, date_parts, parse_date_input, redirect, render
from retentiond.web.wording import HOLD_TYPE_LABELS, plural, scope_words

router = APIRouter(include_in_schema=False)

SCOPE_LABELS = {"record": "One record (its record id)", "subject": "A subject (their reference)",
                "category": "A category", "controller": "A controller (its code)",
                "filter": "A saved filter (its name): the records its criteria match"}


def _holds_view(request: Request, *, show_all: bool, errors: list[FieldError] | None = None,
                form: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    holds = list_holds(context_for(request), include_lifted=show_all)
    filters = list_filters(context_for(request))
    return render(request, "holds.html", title="Holds", holds=holds, show_all=show_all,
                  scopes=HOLD_SCOPES, scope_labels=SCOPE_LABELS,
                  hold_types=[(t, HOLD_TYPE_LABELS[t]) for t in HOLD_TYPES],
                  filters=filters,
                  error_summary=errors, errors=errors, form=form or {}, status_code=status_code)


@router.get("/holds", name="holds_page")
def holds_page(request: Request, all: bool = False, scope_kind: str = "",
               scope_value: str = "") -> HTMLResponse:
    """The register; ``scope_kind`` and ``scope_value`` pre-fill the form (the saved filters
    page links here to place a hold by a filter)."""
    form = {"scope_kind": scope_kind, "scope_value": scope_value[:300]} \
        if scope_kind in HOLD_SCOPES else None
    return _holds_view(request, show_all=all, form=form)


@router.post("/holds", name="holds_place")
async def holds_place(request: Request) -> Response:
    form = await request.form()
    errors: list[FieldError] = []
    kind = str(form.get("scope_kind") or "")
    value = str(form.get("scope_value") or "").strip()
    hold_type = str(form.get("hold_type") or "")
    reason = str(form.get("reason") or "").strip()
    back = str(form.get("back") or "/holds")
    if not back.startswith("/") or back.startswith("//"):
        back = "/holds"
    if kind not in HOLD_SCOPES:
        errors.append(FieldError("scope_kind", "Choose what the hold covers"))
    if not value:
        errors.append(FieldError("scope_value", "Enter the record id, subject reference, "
                                                "category, controller code or filter name"))
    if hold_type not in HOLD_TYPES:
        errors.append(FieldError("hold_type", "Choose the type of hold"))
    if not has_visible(reason):
        errors.append(FieldError("reason", "Enter the reason for the hold"))
    until = parse_date_input(form, "until", "end date", errors, required=False)
    hold = None
    if not errors:
        try:
            hold = await run_in_threadpool(place_hold, context_for(request),
                                           scope=f"{kind}:{value}", hold_type=hold_type,
                                           reason=reason, until=until)
        except LifecycleError as exc:
            errors.append(FieldError("scope_value", str(exc)))
    if errors or hold is None:
        return _holds_view(request, show_all=False, errors=errors, status_code=400, form={
            "scope_kind": kind, "scope_value": value, "hold_type": hold_type, "reason": reason,
            "until": date_parts(form, "until")})
    scope = scope_words(hold.scope, web_state(request).policy.category_label)
    what = f"{scope} ({hold.covers})" if hold.criteria is not None else scope
    return redirect(back, flash=f"Hold {hold.id} placed. It covers {what[:1].lower()}{what[1:]}: "
                                f"{plural(hold.records_covered, 'record')}.")


@router.get("/holds/{hold_id:int}", name="hold_page")
def hold_page(request: Request, hold_id: int) -> HTMLResponse:
    return _hold_view(request, hold_id)


def _hold_view(request: Request, hold_id: int, *, errors: list[FieldError] | None = None,
               status_code: int = 200) -> HTMLResponse:
    state = web_state(request)
    if hold_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no hold {hold_id}")
    hold = next((h for h in list_holds(context_for(request), include_lifted=True) if h.id == hold_id),
                None)
    if hold is None:
        raise HTTPException(status_code=404, detail=f"no hold {hold_id}")
    kind, _, value = hold.scope.partition(":")
    with state.sessions() as session:
        covered = queries.records_covered(session, kind, value, hold.criteria)
    return render(request, "hold.html", title=f"Hold {hold.id}", hold=hold, covered=covered,
                  error_summary=errors, errors=errors, status_code=status_code)


@router.post("/holds/{hold_id:int}/lift", name="holds_lift")
async def holds_lift(request: Request, hold_id: int) -> Response:
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    if hold_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no hold {hold_id}")
    if not has_visible(reason):
        errors = [FieldError("reason", "Enter the reason for lifting the hold")]
        return _hold_view(request, hold_id, errors=errors, status_code=400)
    try:
        hold = await run_in_threadpool(lift_hold, context_for(request), hold_id, reason=reason)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return redirect(f"/holds/{hold.id}", flash=f"Hold {hold.id} lifted. The cases it held go back "
                                               "to review unless another hold covers them.")
