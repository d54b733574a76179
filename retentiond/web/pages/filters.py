"""Saved filters: save the review queue's current filter under a name, list them, delete one.

A saved filter reproduces a queue view, and can scope a hold (``filter:<name>``): the hold
copies the criteria when it is placed, so deleting a filter here never changes a hold.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import FIELDS, delete_filter, list_filters, save_filter
from retentiond.web.auth import context_for
from retentiond.web.pages.common import FieldError, query_string, redirect, render
from retentiond.web.pages.queue import _queue_view
from retentiond.web.pages.queue_params import filter_from
from retentiond.web.queries import QueryError, QueueFilter

router = APIRouter(include_in_schema=False)


def queue_link(criteria: dict[str, str]) -> str:
    """The queue showing what a saved filter selects (any state unless it names one)."""
    return "/queue?" + query_string({"state": "any", **criteria})


@router.get("/filters", name="filters_page")
def filters_page(request: Request) -> HTMLResponse:
    filters = list_filters(context_for(request))
    return render(request, "filters.html", title="Saved filters", filters=filters,
                  queue_link=queue_link, quote=quote)


@router.post("/filters", name="filters_save")
async def filters_save(request: Request) -> Response:
    """Save the queue's filter (its criteria come as the form's hidden fields)."""
    form = await request.form()
    name = str(form.get("name") or "").strip()
    criteria = {k: str(form.get(k) or "") for k in FIELDS}
    if criteria["state"] == "any":
        criteria["state"] = ""
    try:
        f = filter_from({**criteria, "state": criteria["state"] or "any"})
    except QueryError:
        f = QueueFilter()
    try:
        saved = await run_in_threadpool(save_filter, context_for(request), name=name,
                                        criteria=criteria)
    except LifecycleError as exc:
        field = str(exc).split(":", 1)[0]
        text = str(exc) if field in ("name", *FIELDS) else f"name: {exc}"
        return _queue_view(request, f, errors=[FieldError("filter_name", text)],
                           form={"filter_name": name}, status_code=400)
    return redirect(queue_link(saved.criteria.as_json()),
                    flash=f"Filter \u201c{saved.name}\u201d saved: {saved.description}.")


@router.post("/filters/{filter_id:int}/delete", name="filters_delete")
async def filters_delete(request: Request, filter_id: int) -> Response:
    if filter_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no saved filter {filter_id}")
    try:
        gone = await run_in_threadpool(delete_filter, context_for(request), str(filter_id))
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    kept = (f" The {len(gone.holds)} active hold(s) placed from it keep their own copy of its "
            "criteria and cover exactly what they covered." if gone.holds else "")
    return redirect("/filters", flash=f"Filter \u201c{gone.name}\u201d deleted.{kept}")
