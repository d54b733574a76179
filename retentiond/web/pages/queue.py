"""The review queue: filter, sort, page through (keyset), select many and act in one go.

The record page offers the same actions for its one case; both post here, and both come back
to the queue as it was filtered (``back``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import failed, review
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
    parts_of,
    query_string,
    redirect,
    render,
)
from retentiond.web.pages.queue_matching import matching_links
from retentiond.web.pages.queue_params import actions_for, back_query, filter_from
from retentiond.web.queries import QueryError, QueueFilter
from retentiond.web.wording import (
    ACTION_LABELS,
    HOLD_TYPE_LABELS,
    STATE_LABELS,
    case_words,
    plural,
)

router = APIRouter(include_in_schema=False)

def _queue_view(request: Request, f: QueueFilter, *, errors: list[FieldError] | None = None,
                selected: set[int] | None = None, form: dict[str, Any] | None = None,
                status_code: int = 200) -> HTMLResponse:
    state, principal = web_state(request), current(request)
    with state.sessions() as session:
        page = queries.queue_page(session, f, controller_id=principal.controller_id,
                                  reviewer=principal.username)
        choices = queries.filter_choices(session, state.policy,
                                         controller_id=principal.controller_id)
    page = dataclasses.replace(page, items=redact.cases(principal, page.items))
    base = f.params(after="", before="")
    next_href = "/queue?" + query_string(f.params(after=page.next_cursor, before="")) \
        if page.next_cursor else None
    prev_href = "/queue?" + query_string(f.params(before=page.prev_cursor, after="")) \
        if page.prev_cursor else None
    actions = actions_for(principal, f.state)
    label = state.policy.category_label
    return render(
        request, "queue.html", title="Review queue", page=page, f=f, choices=choices,
        states=[(s, STATE_LABELS.get(s, s)) for s in DISPOSAL_STATES],
        hold_types=[(t, HOLD_TYPE_LABELS[t]) for t in HOLD_TYPES],
        category_options=sorted(((c, label(c)) for c in choices["categories"]),
                                key=lambda o: o[1]),
        action_options=[(a, ACTION_LABELS.get(a, a)) for a in choices["actions"]],
        page_sizes=[str(n) for n in sorted({*queries.PAGE_SIZES, f.limit})],
        next_href=next_href, prev_href=prev_href,
        export_qs=query_string(base), back=query_string(f.params()),
        due_from=form.get("due_from") if form and "due_from" in form else parts_of(f.due_from),
        due_to=form.get("due_to") if form and "due_to" in form else parts_of(f.due_to),
        error_summary=errors, errors=errors, selected=selected or set(), form=form or {},
        actions=actions, matching_links=matching_links(f, actions),
        status_code=status_code,
    )


@router.get("/queue", name="queue_page")
def queue_page(request: Request) -> HTMLResponse:
    errors: list[FieldError] = []
    try:
        f = filter_from(request.query_params, errors)
    except QueryError as exc:
        field = str(exc).split(":", 1)[0]
        return _queue_view(request, QueueFilter(), errors=[FieldError(field, str(exc))],
                           status_code=400)
    if errors:
        typed = {name: date_parts(request.query_params, name) for name in ("due_from", "due_to")}
        return _queue_view(request, f, errors=errors, form=typed, status_code=400)
    return _queue_view(request, f)


def _message(verb: str, done: list[review.DisposalView], until: dt.date | None) -> str:
    """What happened, in words: 'Case 12 approved.', 'Deferred 3 cases until 31 March 2027.'"""
    from retentiond.wording import long_date

    which = f"case {done[0].id}" if len(done) == 1 else plural(len(done), "case")
    if verb == "approve":
        approved = sum(1 for d in done if d.state in ("approved", "cooling_off"))
        waiting = len(done) - approved
        if len(done) == 1:
            case = done[0]
            if case.state == "cooling_off" and case.cooling_until is not None:
                return (f"Approval recorded for {which}: it is approved, and waits until "
                        f"{long_date(case.cooling_until.date())} (cooling-off) before it can "
                        "be carried out.")
            if case.stage_words():
                return f"Approval recorded for {which}: it now waits for {case.stage_words()}."
            return (f"Approval recorded for {which}: it is approved." if approved else
                    f"Approval recorded for {which}: it needs another approver.")
        return (f"Approval recorded for {which}: {approved:,} approved, {waiting:,} "
                f"{'needs' if waiting == 1 else 'need'} another approver.")
    if verb == "defer":
        assert until is not None
        return f"Deferred {which} until {long_date(until)}."
    if verb == "reject":
        return f"Rejected {which}: the {'record is' if len(done) == 1 else 'records are'} kept."
    if verb == "exception":
        return (f"Exception raised on {which}: {'it goes' if len(done) == 1 else 'they go'} "
                "back to the IG officer.")
    if verb == "resume":
        return f"Sent {which} on to review, from the first stage."
    if verb == "cancel_cooling":
        return (f"Cooling-off cancelled for {which}: back to review; earlier approvals no "
                "longer count.")
    if verb == "retry":
        return (f"{which[:1].upper()}{which[1:]} will be tried again at the next disposal run "
                "(holds and due dates are checked again first).")
    return f"Sent {which} back to review: {'it needs' if len(done) == 1 else 'they need'} approving again."


async def _act(request: Request, verb: str) -> Response:
    form = await request.form()
    principal = current(request)
    back = back_query(str(form.get("back") or ""))
    f = filter_from(dict(parse_qsl(back)))
    record_key = str(form.get("record") or "")[:200]
    raw_ids = [str(v) for v in form.getlist("ids")]
    errors: list[FieldError] = []
    ids = [int(v) for v in raw_ids if v.isdigit() and len(v) < 19]
    reason = str(form.get("reason") or "").strip()
    if not ids and not (verb == "hold" and record_key):
        errors.append(FieldError("ids", "Select at least one case"))
    if verb == "comment" and len(set(ids)) > 1:
        errors.append(FieldError("ids", "Comment on one case at a time"))
    if not has_visible(reason):
        errors.append(FieldError("reason", "Enter a comment" if verb == "comment"
                                 else "Enter a reason"))
    until = None
    if verb == "defer":
        until = parse_date_input(form, "until", "date to defer until", errors, required=True)
    hold_type = str(form.get("hold_type") or "")
    if verb == "hold" and hold_type not in HOLD_TYPES:
        errors.append(FieldError("hold_type", "Choose the type of hold"))
    ctx = context_for(request)
    state = web_state(request)
    if not errors and ids:
        with state.sessions() as session:
            allowed = queries.disposals_for_ids(session, ids,
                                                controller_id=principal.controller_id,
                                                reviewer=principal.username)
        if len(allowed) != len(set(ids)):
            errors.append(FieldError("ids", "Some of the selected cases do not exist"))
    if record_key:
        with state.sessions() as session:
            owner = queries.record_controller(session, record_key)
        if owner is None or principal.controller_id not in (None, owner):
            record_key = ""
            if not ids:
                errors.append(FieldError("ids", "There is no such record"))
    message = ""
    if not errors:
        try:
            if verb == "hold":
                message = await run_in_threadpool(_hold_cases, ctx, ids, record_key, hold_type,
                                                  reason)
            elif verb == "comment":
                await run_in_threadpool(lambda: review.comment(ctx, ids[0], text=reason))
                message = f"Comment added to case {ids[0]}."
            else:
                actions: dict[str, Callable[..., list[review.DisposalView]]] = {
                    "approve": review.approve, "defer": review.defer, "reject": review.reject,
                    "retry": failed.retry, "return": failed.return_to_review,
                    "exception": review.raise_exception, "resume": review.resume,
                    "cancel_cooling": review.cancel_cooling}
                extra: dict[str, Any] = {"until": until} if verb == "defer" else {}
                if verb == "approve":
                    extra["acknowledge_not_found"] = form.get("acknowledge_not_found") == "yes"
                done = await run_in_threadpool(actions[verb], ctx, ids, reason=reason, **extra)
                message = _message(verb, done, until)
        except LifecycleError as exc:
            errors.append(FieldError("ids", case_words(str(exc))))
    if errors:
        form_values = {"reason": reason, "until": date_parts(form, "until"), "hold_type": hold_type}
        if record_key:
            from retentiond.web.pages.records import record_view

            return await run_in_threadpool(record_view, request, record_key, back=back,
                                           errors=errors, form=form_values, status_code=400)
        return _queue_view(request, f, errors=errors, selected=set(ids), form=form_values,
                           status_code=400)
    return redirect("/queue?" + back, flash=message)


def _hold_cases(ctx: Any, ids: list[int], record_key: str, hold_type: str, reason: str) -> str:
    """One record-scoped hold for each selected case's record (or the record named)."""
    if ids:
        with ctx.sessions() as session:
            keys = queries.record_keys_for(session, ids)
    else:
        keys = [record_key]
    for key in keys:
        place_hold(ctx, scope=f"record:{key}", hold_type=hold_type, reason=reason)
    if len(keys) == 1:
        return f"Hold placed on record {keys[0]}: it cannot be disposed of until the hold is lifted."
    return (f"Placed {plural(len(keys), 'hold')}, one on each record: they cannot be disposed "
            "of until the holds are lifted.")


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


@router.post("/queue/retry", name="queue_retry")
async def queue_retry(request: Request) -> Response:
    return await _act(request, "retry")


@router.post("/queue/return-to-review", name="queue_return")
async def queue_return(request: Request) -> Response:
    return await _act(request, "return")


@router.post("/queue/exception", name="queue_exception")
async def queue_exception(request: Request) -> Response:
    return await _act(request, "exception")


@router.post("/queue/comment", name="queue_comment")
async def queue_comment(request: Request) -> Response:
    return await _act(request, "comment")


@router.post("/queue/resume", name="queue_resume")
async def queue_resume(request: Request) -> Response:
    return await _act(request, "resume")


@router.post("/queue/cancel-cooling", name="queue_cancel_cooling")
async def queue_cancel_cooling(request: Request) -> Response:
    return await _act(request, "cancel_cooling")
