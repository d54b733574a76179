"""``/api/v1/filters``: saved review-queue filters: list, show, save, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import delete_filter, get_filter, list_filters, save_filter
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import SavedFilter, SavedFilters, SaveFilterRequest
from retentiond.web.auth import context_for

router = APIRouter(prefix="/api/v1", tags=["filters"], responses=ERRORS)


@router.get("/filters", name="api_filters", response_model=SavedFilters)
def api_filters(request: Request) -> SavedFilters:
    """Saved filters by name, with what each selects in plain English."""
    return SavedFilters(items=[SavedFilter.model_validate(f.as_json())
                               for f in list_filters(context_for(request))])


@router.get("/filters/{filter_id}", name="api_filter", response_model=SavedFilter)
def api_filter(request: Request, filter_id: Annotated[int, Path(ge=1, le=2**62)]) -> SavedFilter:
    """One saved filter."""
    try:
        return SavedFilter.model_validate(get_filter(context_for(request), str(filter_id)).as_json())
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.post("/filters", name="api_filters_save", response_model=SavedFilter, status_code=201)
async def api_filters_save(request: Request, body: SaveFilterRequest) -> SavedFilter:
    """Save criteria under a new name. A hold can then be scoped by ``filter:<name>``."""
    criteria = {k: v.isoformat() if hasattr(v, "isoformat") else v
                for k, v in body.criteria.model_dump(exclude_none=True).items()}
    try:
        saved = await run_in_threadpool(lambda: save_filter(
            context_for(request), name=body.name, criteria=criteria))
    except LifecycleError as exc:
        raise HTTPException(status_code=400 if not str(exc).startswith("name: a saved filter")
                            else 409, detail=str(exc)) from None
    return SavedFilter.model_validate(saved.as_json())


@router.delete("/filters/{filter_id}", name="api_filters_delete", response_model=SavedFilter)
async def api_filters_delete(request: Request,
                             filter_id: Annotated[int, Path(ge=1, le=2**62)]) -> SavedFilter:
    """Delete a saved filter. Holds placed from it keep their own copy of its criteria and
    are not changed; the response lists them under ``holds``."""
    try:
        gone = await run_in_threadpool(delete_filter, context_for(request), str(filter_id))
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return SavedFilter.model_validate(gone.as_json())
