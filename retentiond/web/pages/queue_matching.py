"""Acting on every case a queue filter selects: "Select all N cases matching this filter".

The queue links here with its filter and a verb. This page counts, now, what the action would
do (how many cases it changes, how many it leaves out and why) and asks for the reason; the
person confirms that number, which goes with the form as ``expected``. If the filter selects a
different number by then (a hold, another reviewer), nothing is changed and the page says so
with the new count (``lifecycle/bulk_review.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import bulk_review
from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import Criteria
from retentiond.text import has_visible
from retentiond.web.auth import context_for, current
from retentiond.web.pages.common import (
    FieldError,
    date_parts,
    parse_date_input,
    query_string,
    redirect,
    render,
)
from retentiond.web.pages.queue_params import ACTION_PERMISSION, filter_from
from retentiond.web.queries import QueryError, QueueFilter
from retentiond.web.wording import case_words, plural

router = APIRouter(include_in_schema=False)

VERB_WORDS = {"approve": ("Approve", "approved"), "defer": ("Defer", "deferred"),
              "reject": ("Reject", "rejected"),
              "exception": ("Raise an exception on", "sent back to the IG officer as exceptions")}


class _Refused(Exception):
    """The person may not take this action."""


def _query(f: QueueFilter) -> str:
    """The filter as a query string that keeps "any state" (``state=any``: an empty state
    would read back as the queue's default, pending review), without the page position."""
    params = f.params(after="", before="")
    params["state"] = params.get("state") or "any"
    return query_string(params)


def back_query(text: str) -> str:
    """A queue filter passed along, rebuilt from what it means (anything else dropped)."""
    try:
        return _query(filter_from(dict(parse_qsl(text))))
    except QueryError:
        return _query(QueueFilter())


def _criteria(f: QueueFilter) -> Criteria:
    return Criteria(controller=f.controller, category=f.category, rule=f.rule, action=f.action,
                    due_from=f.due_from, due_to=f.due_to, state=f.state)


def _page(request: Request, verb: str, back: str, *, ack: bool,
          errors: list[FieldError] | None = None, form: dict[str, Any] | None = None,
          status_code: int = 200) -> HTMLResponse:
    """The confirmation page, with the count as it is now."""
    f = filter_from(dict(parse_qsl(back)))
    preview = bulk_review.preview_matching(context_for(request), verb, _criteria(f),
                                           gone_at_source=f.gone_at_source,
                                           acknowledge_not_found=ack)
    title, done = VERB_WORDS[verb]
    return render(
        request, "queue_matching.html", title=f"{title} every case matching this filter",
        verb=verb, verb_title=title, verb_done=done, preview=preview, back=back, ack=ack,
        description=_criteria(f).describe().replace("records", "cases of records", 1),
        not_found=sum(lo.count for lo in preview.left_out if lo.code == "not_found"),
        errors=errors, error_summary=errors, form=form or {}, status_code=status_code)


def _allowed(request: Request, verb: str) -> None:
    if verb not in VERB_WORDS or not current(request).can(ACTION_PERMISSION[verb]):
        raise _Refused(verb)


@router.get("/queue/matching", name="queue_matching_page")
async def queue_matching_page(request: Request) -> Response:
    verb = request.query_params.get("verb", "")
    if verb not in VERB_WORDS:
        return render(request, "error.html", title="Choose what to do",
                      message="Choose an action for the cases from the review queue: approve, "
                      "defer, reject or raise an exception.", status_code=400)
    try:
        _allowed(request, verb)
    except _Refused:
        return render(request, "error.html", title="You cannot do that",
                      message="Your role does not let you take this action on cases.",
                      status_code=403)
    back = back_query(request.query_params.get("back") or "")
    try:
        return await run_in_threadpool(_page, request, verb, back,
                                       ack=request.query_params.get("ack") == "1")
    except (LifecycleError, QueryError) as exc:
        return redirect("/queue?" + back, flash=case_words(str(exc)), kind="error")


def _result_words(verb: str, result: bulk_review.BulkResult, until: dt.date | None) -> str:
    from retentiond.wording import long_date

    if verb == "approve":
        text = (f"Approval recorded for {plural(result.acted, 'case')}: "
                f"{result.completed:,} approved, {result.waiting:,} "
                f"{'needs' if result.waiting == 1 else 'need'} another approver or stage.")
    elif verb == "defer":
        assert until is not None
        text = f"Deferred {plural(result.acted, 'case')} until {long_date(until)}."
    elif verb == "exception":
        text = (f"Raised an exception on {plural(result.acted, 'case')}: they are back with the "
                "IG officer.")
    else:
        text = f"Rejected {plural(result.acted, 'case')}: the records are kept."
    if result.left_out:
        text += " Left out: " + ", ".join(lo.words for lo in result.left_out) + "."
    return text


async def _act(request: Request, verb: str) -> Response:
    form = await request.form()
    back = back_query(str(form.get("back") or ""))
    ack = form.get("acknowledge_not_found") == "yes"
    reason = str(form.get("reason") or "").strip()
    errors: list[FieldError] = []
    if not has_visible(reason):
        errors.append(FieldError("reason", "Enter a reason"))
    until = parse_date_input(form, "until", "date to defer until", errors, required=True) \
        if verb == "defer" else None
    expected_text = str(form.get("expected") or "")
    expected = int(expected_text) if expected_text.isdigit() and len(expected_text) < 10 else -1
    values = {"reason": reason, "until": date_parts(form, "until")}
    if not errors:
        f = filter_from(dict(parse_qsl(back)))
        ctx = context_for(request)
        kwargs: dict[str, Any] = {"reason": reason, "expected": expected,
                                  "gone_at_source": f.gone_at_source}
        if verb == "approve":
            kwargs["acknowledge_not_found"] = ack
        if verb == "defer":
            kwargs["until"] = until
        actions: dict[str, Callable[..., bulk_review.BulkResult]] = {
            "approve": bulk_review.approve_matching, "defer": bulk_review.defer_matching,
            "reject": bulk_review.reject_matching, "exception": bulk_review.except_matching}
        action = actions[verb]
        try:
            result = await run_in_threadpool(action, ctx, _criteria(f), **kwargs)
        except bulk_review.SelectionChanged:
            errors.append(FieldError(
                "expected", "The cases matching this filter changed since you looked (a hold, "
                "another reviewer or a new case): nothing was changed. Check the new numbers "
                "below and confirm again"))
        except LifecycleError as exc:
            message = str(exc)
            field = message.split(":", 1)[0] if message.split(":", 1)[0] in ("until",
                                                                              "reason") else "expected"
            errors.append(FieldError(field, case_words(message.split(": ", 1)[-1]
                                                       if field != "expected" else message)))
        else:
            return redirect("/queue?" + back, flash=_result_words(verb, result, until))
    return await run_in_threadpool(_page, request, verb, back, ack=ack, errors=errors,
                                   form=values, status_code=400)


@router.post("/queue/matching/approve", name="queue_matching_approve")
async def queue_matching_approve(request: Request) -> Response:
    return await _act(request, "approve")


@router.post("/queue/matching/defer", name="queue_matching_defer")
async def queue_matching_defer(request: Request) -> Response:
    return await _act(request, "defer")


@router.post("/queue/matching/reject", name="queue_matching_reject")
async def queue_matching_reject(request: Request) -> Response:
    return await _act(request, "reject")


@router.post("/queue/matching/exception", name="queue_matching_exception")
async def queue_matching_exception(request: Request) -> Response:
    return await _act(request, "exception")


def matching_links(f: QueueFilter, actions: list[str]) -> list[tuple[str, str]]:
    """(label, href) of the queue's "every case matching this filter" actions."""
    back = _query(f)
    return [(VERB_WORDS[v][0], "/queue/matching?" + query_string({"verb": v, "back": back}))
            for v in ("approve", "defer", "reject", "exception") if v in actions]
