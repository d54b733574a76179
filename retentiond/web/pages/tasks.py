"""Tasks for a person (issue 10): cases pending confirmation, and the forms that close them.

The executor leaves three kinds of case for a person (``retentiond.lifecycle.tasks``): data
not found in its holding system on the first attempt, a manual destruction to confirm, and a
rule whose action is review. The Tasks page lists them by kind; the record page carries the
forms (this module handles their posts): confirm what happened to data not found, send it back
to review, or confirm a destruction with its evidence. A refusal comes back on the record page
as an error summary; a success goes back to the page the form was opened from with a banner.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.config import ConfigError
from retentiond.connectors import ConnectorRegistry
from retentiond.lifecycle import tasks
from retentiond.lifecycle.context import LifecycleError
from retentiond.text import has_visible
from retentiond.web import queries
from retentiond.web.auth import context_for, current, web_state
from retentiond.web.pages.common import (
    FieldError,
    date_parts,
    parse_date_input,
    query_string,
    redirect,
    render,
)
from retentiond.web.pages.queue_params import back_query
from retentiond.web.pages.task_info import KIND_WORDS, connector_problem, since
from retentiond.web.wording import case_words
from retentiond.wording import long_date

router = APIRouter(include_in_schema=False)

#: A case's id in an address (ids the registry can hold on every backend).
CaseId = Annotated[int, Path(ge=1, le=2**62)]
#: The most tasks of one kind the page lists (the rest are counted, and the queue lists all).
PAGE_LIMIT = 200

#: The lifecycle names the command line's options in its refusals; a form names its fields.
#: option -> (field, words that replace it)
_OPTION_FIELDS = {
    "--evidence": ("evidence", "What happened to it"),
    "--reason": ("send_back_reason", "Why it goes back to review"),
    "--destroyed-by": ("destroyed_by", "Who destroyed it"),
    "--destroyed-on": ("destroyed_on", "The date it was destroyed"),
    "--method": ("method", "How it was destroyed"),
    "--certificate-no": ("certificate_no", "The certificate number"),
}
_ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def refusal(message: str) -> FieldError:
    """A lifecycle refusal as a form error: on the field it names, in words ('--evidence is
    required: at least 10 visible characters' -> 'What happened to it is required: ...'),
    dates written out; any other on the form as a whole."""
    message = _ISO_DATE.sub(lambda m: long_date(m.group(1)), case_words(message))
    message = message.replace(" (disposals send-back)", "")
    for option, (field, words) in _OPTION_FIELDS.items():
        if message.startswith(option):
            return FieldError(field, words + message[len(option):],
                              f"{field}-day" if field == "destroyed_on" else "")
    message = re.sub(r"\s*\(disposals send-back\)|\s*with --evidence", "", message)
    return FieldError("task", message[:1].upper() + message[1:])


@router.get("/tasks", name="tasks_page")
def tasks_page(request: Request) -> HTMLResponse:
    ctx = context_for(request)
    counts = tasks.count_tasks(ctx)
    groups = []
    for kind in tasks.TASK_KINDS:
        heading, next_step = KIND_WORDS[kind]
        items = tasks.list_tasks(ctx, kind=kind, limit=PAGE_LIMIT) if counts[kind] else []
        groups.append({"kind": kind, "heading": heading, "next": next_step,
                       "rows": items, "count": counts[kind]})
    return render(request, "tasks.html", title="Tasks", groups=groups,
                  total=sum(counts.values()), limit=PAGE_LIMIT, since=since)


async def _post(request: Request, disposal_id: int, verb: str) -> Response:
    """One task form: checked field by field, then the lifecycle; a refusal renders the record
    page again with the form as typed, a success goes back with a banner."""
    form = await request.form()
    principal, state = current(request), web_state(request)
    came_from = "tasks" if form.get("from") == "tasks" else "record"
    back = back_query(str(form.get("back") or ""))
    with state.sessions() as session:
        found = queries.disposals_for_ids(session, [disposal_id],
                                          controller_id=principal.controller_id)
        record_key = queries.record_keys_for(session, [disposal_id]) if found else []
    if not record_key:
        raise HTTPException(status_code=404, detail=f"no case {disposal_id}")
    key = record_key[0]
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    ctx = context_for(request)
    message = ""
    if verb == "confirm_not_found":
        evidence = str(form.get("evidence") or "")
        values["evidence"] = evidence
        if not has_visible(evidence):
            errors.append(FieldError("evidence", "Enter what happened to it"))
        else:
            task = await run_in_threadpool(tasks.get_task, ctx, disposal_id)
            problem = None if task is None or task.kind != "not_found" else \
                await run_in_threadpool(connector_problem, request, task.system)
            if problem:  # else the lifecycle refuses a case that is not (or no longer) one
                errors.append(FieldError("task", problem))
        if not errors:
            try:
                await run_in_threadpool(tasks.confirm_not_found, ctx, disposal_id,
                                        evidence=evidence, connectors=_registry(request))
                message = (f"Confirmed for case {disposal_id}: its data is still not in the "
                           "holding system, and what you wrote is what its certificate will "
                           "say happened to it.")
            except LifecycleError as exc:
                errors.append(refusal(str(exc)))
    elif verb == "send_back":
        reason = str(form.get("send_back_reason") or "")
        values["send_back_reason"] = reason
        if not has_visible(reason):
            errors.append(FieldError("send_back_reason", "Enter why it goes back to review"))
        else:
            try:
                await run_in_threadpool(tasks.send_back, ctx, disposal_id, reason=reason)
                message = (f"Sent case {disposal_id} back to review: it needs approving again "
                           "before anything is done to it.")
            except LifecycleError as exc:
                errors.append(refusal(str(exc)))
    else:
        destroyed_by = str(form.get("destroyed_by") or "")
        method = str(form.get("method") or "")
        certificate_no = str(form.get("certificate_no") or "")
        values.update(destroyed_by=destroyed_by, method=method, certificate_no=certificate_no,
                      destroyed_on=date_parts(form, "destroyed_on"))
        if not has_visible(destroyed_by):
            errors.append(FieldError("destroyed_by", "Enter who destroyed it"))
        destroyed_on = parse_date_input(form, "destroyed_on", "date it was destroyed", errors,
                                        required=True)
        if destroyed_on is not None and destroyed_on > state.clock.today():
            errors.append(FieldError("destroyed_on", "The date it was destroyed must be today "
                                     "or in the past", "destroyed_on-day"))
        if not has_visible(method):
            errors.append(FieldError("method", "Enter how it was destroyed"))
        if not errors:
            assert destroyed_on is not None
            try:
                await run_in_threadpool(_confirm_destruction, ctx, disposal_id, destroyed_by,
                                        destroyed_on, method, certificate_no,
                                        _registry(request))
                message = (f"Destruction confirmed for case {disposal_id}: it is recorded as "
                           "destroyed, with your evidence, and goes on the next certificate.")
            except LifecycleError as exc:
                errors.append(refusal(str(exc)))
    if errors:
        from retentiond.web.pages.records import record_view

        return await run_in_threadpool(record_view, request, key, back=back, errors=errors,
                                       form=values, status_code=400, came_from=came_from)
    if came_from == "tasks":
        return redirect("/tasks", flash=message)
    from urllib.parse import quote

    return redirect(f"/records/{quote(key, safe='')}?" + query_string({"back": back}),
                    flash=message)


def _registry(request: Request) -> ConnectorRegistry:
    """The connectors; none when their configuration cannot be used (a destruction's
    confirmation then states what remains as undeclared; data not found is refused first)."""
    try:
        return web_state(request).holding_connectors()
    except ConfigError:
        return ConnectorRegistry({}, {})


def _confirm_destruction(ctx: Any, disposal_id: int, destroyed_by: str, destroyed_on: dt.date,
                         method: str, certificate_no: str, registry: Any) -> None:
    tasks.confirm_destruction(ctx, disposal_id, destroyed_by=destroyed_by,
                              destroyed_on=destroyed_on, method=method,
                              certificate_no=certificate_no or None, connectors=registry)


@router.post("/tasks/{disposal_id}/confirm-not-found", name="task_confirm_not_found")
async def task_confirm_not_found(request: Request, disposal_id: CaseId) -> Response:
    return await _post(request, disposal_id, "confirm_not_found")


@router.post("/tasks/{disposal_id}/send-back", name="task_send_back")
async def task_send_back(request: Request, disposal_id: CaseId) -> Response:
    return await _post(request, disposal_id, "send_back")


@router.post("/tasks/{disposal_id}/confirm-destruction", name="task_confirm_destruction")
async def task_confirm_destruction(request: Request, disposal_id: CaseId) -> Response:
    return await _post(request, disposal_id, "confirm_destruction")
