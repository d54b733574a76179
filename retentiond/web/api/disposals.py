"""``/api/v1/disposals``: the review queue and the review actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import bulk_review, failed, review
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import Criteria, parse_criteria
from retentiond.web import queries, redact
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import (
    ApproveMatchingRequest,
    ApproveRequest,
    CaseRequest,
    CommentRequest,
    DeferMatchingRequest,
    DeferRequest,
    Disposal,
    DisposalPage,
    Disposals,
    FilterCriteria,
    MatchingPreview,
    MatchingResult,
    RejectMatchingRequest,
    RejectRequest,
    RetryRequest,
)
from retentiond.web.auth import context_for, current, web_state
from retentiond.web.pages.queue_params import ACTION_PERMISSION
from retentiond.web.queries import QueryError, QueueFilter

router = APIRouter(prefix="/api/v1", tags=["disposals"], responses=ERRORS)


@router.get("/disposals", name="api_disposals", response_model=DisposalPage)
def api_disposals(
    request: Request,
    state: Annotated[str | None, Query(description="a disposal state; empty for any")] = "pending_review",
    controller: str | None = None,
    category: str | None = None,
    rule: str | None = None,
    action: str | None = None,
    due_from: dt.date | None = None,
    due_to: dt.date | None = None,
    sort: Literal["due_on", "id"] = "due_on",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> DisposalPage:
    """The queue, filtered and keyset-paged (pass ``next_cursor`` back as ``after``)."""
    principal = current(request)
    try:
        f = QueueFilter(state=state or None, controller=controller, category=category, rule=rule,
                        action=action, due_from=due_from, due_to=due_to, sort=sort,
                        descending=order == "desc", limit=limit, after=after, before=before)
        with web_state(request).sessions() as session:
            page = queries.queue_page(session, f, controller_id=principal.controller_id,
                                      reviewer=principal.username)
    except QueryError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return DisposalPage(items=[Disposal.model_validate(v.as_json())
                               for v in redact.cases(principal, page.items)],
                        total=page.total, total_capped=page.total_capped,
                        next_cursor=page.next_cursor,
                        prev_cursor=page.prev_cursor)


def _check_ids(request: Request, ids: list[int]) -> None:
    principal = current(request)
    with web_state(request).sessions() as session:
        allowed = queries.disposals_for_ids(session, ids, controller_id=principal.controller_id,
                                            reviewer=principal.username)
    missing = sorted(set(ids) - set(allowed))
    if missing:
        raise HTTPException(status_code=404, detail=f"no disposal {', '.join(map(str, missing))}")


def _result(views: list[review.DisposalView]) -> Disposals:
    return Disposals(items=[Disposal.model_validate(v.as_json()) for v in views])


async def _act(request: Request, ids: list[int], action: Callable[..., list[review.DisposalView]],
               **kwargs: Any) -> Disposals:
    """One review action on cases the caller may see; a lifecycle refusal is a 409."""
    await run_in_threadpool(_check_ids, request, ids)
    try:
        return _result(await run_in_threadpool(action, context_for(request), ids, **kwargs))
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.post("/disposals/approve", name="api_disposals_approve", response_model=Disposals)
async def api_disposals_approve(request: Request, body: ApproveRequest) -> Disposals:
    """Record the caller's approval; a case is approved once enough different people have."""
    return await _act(request, body.ids, review.approve, reason=body.reason,
                      acknowledge_not_found=body.acknowledge_not_found)


@router.post("/disposals/defer", name="api_disposals_defer", response_model=Disposals)
async def api_disposals_defer(request: Request, body: DeferRequest) -> Disposals:
    """Keep the records until ``until``; the cases close as deferred."""
    return await _act(request, body.ids, review.defer, reason=body.reason, until=body.until)


@router.post("/disposals/reject", name="api_disposals_reject", response_model=Disposals)
async def api_disposals_reject(request: Request, body: RejectRequest) -> Disposals:
    """Refuse disposal under the present decision: the records are retained."""
    return await _act(request, body.ids, review.reject, reason=body.reason)


@router.post("/disposals/retry", name="api_disposals_retry", response_model=Disposals)
async def api_disposals_retry(request: Request, body: RetryRequest) -> Disposals:
    """Try failed cases again, after their cause is fixed: they go back to ``approved`` with
    their approvals (refused while a hold covers the record), and holds and due dates are
    checked again when they are claimed."""
    return await _act(request, body.ids, failed.retry, reason=body.reason)


@router.post("/disposals/return-to-review", name="api_disposals_return_to_review",
             response_model=Disposals)
async def api_disposals_return_to_review(request: Request, body: RetryRequest) -> Disposals:
    """Send failed cases back to ``pending_review``; their approvals no longer count."""
    return await _act(request, body.ids, failed.return_to_review, reason=body.reason)


# --- everything a filter selects (issue 14, item 5) -----------------------------------------

def _criteria(body: FilterCriteria) -> Criteria:
    """The lifecycle's criteria from the body's; a bad one is a 400 naming the field."""
    raw = {k: v.isoformat() if hasattr(v, "isoformat") else v
           for k, v in body.model_dump(exclude_none=True).items()}
    try:
        return parse_criteria(raw)
    except LifecycleError as exc:
        raise HTTPException(status_code=400, detail=f"criteria.{exc}") from None


async def _matching(request: Request, action: Any, criteria: FilterCriteria,
                    **kwargs: Any) -> MatchingResult:
    """One bulk action; bad criteria are a 400, a changed selection or a refusal a 409."""
    parsed = _criteria(criteria)
    try:
        result = await run_in_threadpool(action, context_for(request), parsed, **kwargs)
    except bulk_review.SelectionChanged as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except LifecycleError as exc:
        field = str(exc).split(":", 1)[0]
        status = 400 if field in ("controller", "category", "rule", "expected", "until",
                                  "reason") else 409
        raise HTTPException(status_code=status, detail=str(exc)) from None
    return MatchingResult.model_validate(result.as_json())


@router.get("/disposals/matching", name="api_disposals_matching_preview",
            response_model=MatchingPreview)
async def api_disposals_matching_preview(
    request: Request,
    verb: Literal["approve", "defer", "reject", "exception"],
    state: Annotated[str | None, Query(max_length=200)] = None,
    controller: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    rule: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    due_from: dt.date | None = None,
    due_to: dt.date | None = None,
    gone_at_source: bool = False,
    acknowledge_not_found: bool = False,
) -> MatchingPreview:
    """How many cases approving, deferring, rejecting or raising exceptions on everything the
    filter selects would change now, and how many it would leave out and why. Changes
    nothing; send ``acting`` back as ``expected``. Needs the permission of the action."""
    if not current(request).can(ACTION_PERMISSION[verb]):
        raise HTTPException(status_code=403, detail=f"you may not {verb} cases")
    parsed = _criteria(FilterCriteria(state=state, controller=controller, category=category,
                                      rule=rule, action=action, due_from=due_from,
                                      due_to=due_to))
    try:
        preview = await run_in_threadpool(
            bulk_review.preview_matching, context_for(request), verb, parsed,
            gone_at_source=gone_at_source, acknowledge_not_found=acknowledge_not_found)
    except LifecycleError as exc:
        raise HTTPException(status_code=400, detail=f"criteria.{exc}") from None
    return MatchingPreview.model_validate(preview.as_json())


@router.post("/disposals/approve-matching", name="api_disposals_approve_matching",
             response_model=MatchingResult)
async def api_disposals_approve_matching(request: Request,
                                         body: ApproveMatchingRequest) -> MatchingResult:
    """Record the caller's approval of every case the filter selects that they may approve
    (the rules of ``/disposals/approve``); the others are left out and counted by reason.
    Refused (409), with nothing changed, unless exactly ``expected`` cases qualify."""
    return await _matching(request, bulk_review.approve_matching, body.criteria,
                           reason=body.reason, expected=body.expected,
                           gone_at_source=body.gone_at_source,
                           acknowledge_not_found=body.acknowledge_not_found)


@router.post("/disposals/defer-matching", name="api_disposals_defer_matching",
             response_model=MatchingResult)
async def api_disposals_defer_matching(request: Request,
                                       body: DeferMatchingRequest) -> MatchingResult:
    """Defer every case the filter selects that review may close, until ``until``."""
    return await _matching(request, bulk_review.defer_matching, body.criteria,
                           reason=body.reason, until=body.until, expected=body.expected,
                           gone_at_source=body.gone_at_source)


@router.post("/disposals/reject-matching", name="api_disposals_reject_matching",
             response_model=MatchingResult)
async def api_disposals_reject_matching(request: Request,
                                        body: RejectMatchingRequest) -> MatchingResult:
    """Reject every case the filter selects that review may close: the records are kept."""
    return await _matching(request, bulk_review.reject_matching, body.criteria,
                           reason=body.reason, expected=body.expected,
                           gone_at_source=body.gone_at_source)
@router.post("/disposals/exception", name="api_disposals_exception", response_model=Disposals)
async def api_disposals_exception(request: Request, body: CaseRequest) -> Disposals:
    """Raise an exception on cases pending review or cooling off: they leave review and go
    back to the IG officer (state ``exception``); their approvals no longer count."""
    return await _act(request, body.ids, review.raise_exception, reason=body.reason)


@router.post("/disposals/resume", name="api_disposals_resume", response_model=Disposals)
async def api_disposals_resume(request: Request, body: CaseRequest) -> Disposals:
    """Send cases raised as exceptions on to review, at their first stage (or to ``held``)."""
    return await _act(request, body.ids, review.resume, reason=body.reason)


@router.post("/disposals/cancel-cooling", name="api_disposals_cancel_cooling",
             response_model=Disposals)
async def api_disposals_cancel_cooling(request: Request, body: CaseRequest) -> Disposals:
    """Cancel the cooling-off of cases: back to review, their approvals no longer count."""
    return await _act(request, body.ids, review.cancel_cooling, reason=body.reason)


@router.post("/disposals/{disposal_id}/comment", name="api_disposals_comment",
             response_model=Disposal)
async def api_disposals_comment(request: Request,
                                disposal_id: Annotated[int, Path(ge=1, le=2**62)],
                                body: CommentRequest) -> Disposal:
    """Comment on a case: its history shows it; nothing else changes."""
    await run_in_threadpool(_check_ids, request, [disposal_id])
    try:
        view = await run_in_threadpool(
            lambda: review.comment(context_for(request), disposal_id, text=body.text))
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return Disposal.model_validate(view.as_json())


@router.post("/disposals/exception-matching", name="api_disposals_exception_matching",
             response_model=MatchingResult)
async def api_disposals_exception_matching(request: Request,
                                           body: RejectMatchingRequest) -> MatchingResult:
    """Raise an exception on every case the filter selects that is pending review or cooling
    off: back to the IG officer, approvals voided."""
    return await _matching(request, bulk_review.except_matching, body.criteria,
                           reason=body.reason, expected=body.expected,
                           gone_at_source=body.gone_at_source)
