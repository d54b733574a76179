"""``/api/v1/holds``: list, place, lift, and what a hold covers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.holds import lift_hold, list_holds, place_hold
from retentiond.web import queries
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import (
    CoveredRecord,
    Hold,
    HoldDetail,
    Holds,
    LiftHoldRequest,
    PlaceHoldRequest,
)
from retentiond.web.auth import context_for, web_state

router = APIRouter(prefix="/api/v1", tags=["holds"], responses=ERRORS)


@router.get("/holds", name="api_holds", response_model=Holds)
def api_holds(request: Request, include_lifted: bool = False) -> Holds:
    """Holds, newest first, with how many records each covers."""
    return Holds(items=[Hold.model_validate(h.as_json())
                        for h in list_holds(context_for(request), include_lifted=include_lifted)])


@router.get("/holds/{hold_id}", name="api_hold", response_model=HoldDetail)
def api_hold(request: Request, hold_id: Annotated[int, Path(ge=1, le=2**62)]) -> HoldDetail:
    """One hold and the first 100 records in its scope."""
    hold = next((h for h in list_holds(context_for(request), include_lifted=True)
                 if h.id == hold_id), None)
    if hold is None:
        raise HTTPException(status_code=404, detail=f"no hold {hold_id}")
    kind, _, value = hold.scope.partition(":")
    with web_state(request).sessions() as session:
        covers = queries.records_covered(session, kind, value, hold.criteria)
    return HoldDetail(hold=Hold.model_validate(hold.as_json()),
                      covers=[CoveredRecord.model_validate(c) for c in covers])


@router.post("/holds", name="api_holds_place", response_model=Hold, status_code=201)
async def api_holds_place(request: Request, body: PlaceHoldRequest) -> Hold:
    """Place a hold; the live cases it covers are held in the same transaction."""
    try:
        hold = await run_in_threadpool(lambda: place_hold(
            context_for(request), scope=body.scope, hold_type=body.type, reason=body.reason,
            until=body.until))
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return Hold.model_validate(hold.as_json())


@router.post("/holds/{hold_id}/lift", name="api_holds_lift", response_model=Hold)
async def api_holds_lift(request: Request, hold_id: Annotated[int, Path(ge=1, le=2**62)],
                         body: LiftHoldRequest) -> Hold:
    """Lift a hold; its cases return to review unless another hold covers them."""
    try:
        hold = await run_in_threadpool(lift_hold, context_for(request), hold_id,
                                       reason=body.reason)
    except LifecycleError as exc:
        status = 404 if str(exc).startswith("no hold") else 409
        raise HTTPException(status_code=status, detail=str(exc)) from None
    return Hold.model_validate(hold.as_json())
