"""The policy in force, with citations, and a preview of what a changed pack would move."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from retentiond.policy import PolicyError
from retentiond.web.auth import audit, context_for, web_state
from retentiond.web.pages.common import FieldError, render
from retentiond.web.preview import preview, proposed_policy

router = APIRouter(include_in_schema=False)
MAX_PACK_BYTES = 1_000_000


def _policy_view(request: Request, **extra: Any) -> HTMLResponse:
    policy = web_state(request).policy
    return render(request, "policy.html", title="Policy", policy=policy, **extra)


@router.get("/policy", name="policy_page")
def policy_page(request: Request) -> HTMLResponse:
    return _policy_view(request)


@router.post("/policy/preview", name="policy_preview_submit")
async def policy_preview_submit(request: Request) -> HTMLResponse:
    form = await request.form()
    upload = form.get("pack")
    text = ""
    if upload is not None and not isinstance(upload, str):
        data = await upload.read(MAX_PACK_BYTES + 1)
        if len(data) > MAX_PACK_BYTES:
            too_big = [FieldError("pack", "The pack is larger than 1 MB")]
            return _policy_view(request, status_code=400, errors=too_big, error_summary=too_big)
        text = data.decode("utf-8", errors="replace")
    if not text.strip():
        text = str(form.get("pack_text") or "")
    if not text.strip():
        errors = [FieldError("pack", "Choose a policy pack file (.toml) or paste one")]
        return _policy_view(request, status_code=400, errors=errors, error_summary=errors)
    state = web_state(request)
    try:
        proposed = proposed_policy(state.policy, text)
    except PolicyError as exc:
        errors = [FieldError("pack", p.split("proposed.toml: ", 1)[-1]) for p in exc.problems[:20]]
        return _policy_view(request, status_code=400, errors=errors, error_summary=errors)
    result = await run_in_threadpool(preview, context_for(request), proposed)
    await run_in_threadpool(audit, request, "PolicyPreviewed", "policy", proposed.version,
                            {"changed_categories": result.changed_categories})
    return _policy_view(request, result=result, proposed=proposed)
