"""``/api/v1/tasks`` and the actions that close a task: cases waiting for a person (data not
found in its holding system, a manual destruction or a review action to confirm)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from retentiond.config import ConfigError
from retentiond.lifecycle import tasks
from retentiond.lifecycle.context import LifecycleError
from retentiond.web import queries
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import (
    ConfirmDestructionRequest,
    ConfirmNotFoundRequest,
    SendBackRequest,
    Task,
    Tasks,
)
from retentiond.web.auth import context_for, current, web_state

router = APIRouter(prefix="/api/v1", tags=["tasks"], responses=ERRORS)

CaseId = Annotated[int, Path(ge=1, le=2**62, description="the disposal case's id")]
#: The lifecycle's refusals name the command line's options; the API names its fields.
_OPTIONS = {"--evidence": "evidence", "--reason": "reason", "--destroyed-by": "destroyed_by",
            "--destroyed-on": "destroyed_on", "--method": "method",
            "--certificate-no": "certificate_no", " (disposals send-back)": " (send-back)",
            " with --evidence": " (confirm-not-found)"}


def _task(request: Request, view: tasks.TaskView) -> Task:
    return Task.model_validate({**view.as_json(),
                                "system_name": web_state(request).cfg.system_label(view.system)})


def _words(message: str) -> str:
    for option, name in _OPTIONS.items():
        message = message.replace(option, name)
    return message


@router.get("/tasks", name="api_tasks", response_model=Tasks)
def api_tasks(request: Request,
              kind: Annotated[str | None, Query(pattern="^(not_found|manual|review)$")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Tasks:
    """Cases waiting for a person, oldest first: at most ``limit`` of each kind (``counts``
    says how many there are)."""
    ctx = context_for(request)
    kinds = [kind] if kind else list(tasks.TASK_KINDS)
    items = [_task(request, t) for k in kinds for t in tasks.list_tasks(ctx, kind=k, limit=limit)]
    return Tasks(items=items, counts=tasks.count_tasks(ctx))


def _check(request: Request, disposal_id: int) -> None:
    principal = current(request)
    with web_state(request).sessions() as session:
        if not queries.disposals_for_ids(session, [disposal_id],
                                         controller_id=principal.controller_id):
            raise HTTPException(status_code=404, detail=f"no disposal {disposal_id}")


async def _run(request: Request, disposal_id: int, action: Any, **kwargs: Any) -> Task:
    """One task action on a case the caller may see; a lifecycle refusal is a 409."""
    await run_in_threadpool(_check, request, disposal_id)
    try:
        view = await run_in_threadpool(action, context_for(request), disposal_id, **kwargs)
    except LifecycleError as exc:
        raise HTTPException(status_code=409, detail=_words(str(exc))) from None
    return _task(request, view)


def _connectors(request: Request) -> Any:
    try:
        return web_state(request).holding_connectors()
    except ConfigError as exc:
        raise HTTPException(status_code=409, detail="the holding systems' connectors cannot be "
                            f"used, so none can be asked again: {exc}") from None


@router.post("/disposals/{disposal_id}/confirm-not-found",
             name="api_disposals_confirm_not_found", response_model=Task)
async def api_disposals_confirm_not_found(request: Request, disposal_id: CaseId,
                                          body: ConfirmNotFoundRequest) -> Task:
    """Data not found on the first attempt: say what happened to it. The holding system is
    asked once more (its connector must be configured for this service); data found now is
    refused (send the case back instead). The case is executed with the outcome
    ``confirmed_not_found``, and its certificate quotes ``evidence``; never "deleted"."""
    registry = await run_in_threadpool(_connectors, request)
    return await _run(request, disposal_id, tasks.confirm_not_found, evidence=body.evidence,
                      connectors=registry)


@router.post("/disposals/{disposal_id}/send-back", name="api_disposals_send_back",
             response_model=Task)
async def api_disposals_send_back(request: Request, disposal_id: CaseId,
                                  body: SendBackRequest) -> Task:
    """Data not found: send the case back to ``pending_review`` once its locator is corrected;
    its approvals no longer count."""
    return await _run(request, disposal_id, tasks.send_back, reason=body.reason)


@router.post("/disposals/{disposal_id}/confirm-destruction",
             name="api_disposals_confirm_destruction", response_model=Task)
async def api_disposals_confirm_destruction(request: Request, disposal_id: CaseId,
                                            body: ConfirmDestructionRequest) -> Task:
    """A manual destruction (or a review action's) carried out: record who destroyed the
    record, when and how; the case is executed. The same evidence again changes nothing;
    different evidence is refused."""
    try:
        registry = await run_in_threadpool(web_state(request).holding_connectors)
    except ConfigError:
        registry = None  # what remains is then stated as undeclared
    return await _run(request, disposal_id, tasks.confirm_destruction,
                      destroyed_by=body.destroyed_by, destroyed_on=body.destroyed_on,
                      method=body.method, certificate_no=body.certificate_no,
                      connectors=registry)
