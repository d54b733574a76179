"""``/api/v1/disposals``: the review queue and the review actions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import failed, review
from retentiond.lifecycle.context import LifecycleError
from retentiond.web import queries, redact
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import (
    ApproveRequest,
    CaseRequest,
    CommentRequest,
    DeferRequest,
    Disposal,
    DisposalPage,
    Disposals,
    RejectRequest,
    RetryRequest,
)
from retentiond.web.auth import context_for, current, web_state
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
async def api_disposals_comment(request: Request, disposal_id: int,
                                body: CommentRequest) -> Disposal:
    """Comment on a case: its history shows it; nothing else changes."""
    await run_in_threadpool(_check_ids, request, [disposal_id])
    try:
        view = await run_in_threadpool(
            lambda: review.comment(context_for(request), disposal_id, text=body.text))
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return Disposal.model_validate(view.as_json())
