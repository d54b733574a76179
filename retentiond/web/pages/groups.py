"""Review groups (admin): the groups a rule's stages name, their members, and what a group
may review (its scope). The command line (``retentiond groups``, ``users scope``) does the
same; the rules are in ``lifecycle/scopes.py`` and docs/web.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle import groups
from retentiond.lifecycle.context import LifecycleError
from retentiond.registry.models import Controller
from retentiond.web.auth import context_for, web_state
from retentiond.web.pages.common import FieldError, redirect, render

router = APIRouter(include_in_schema=False)


def _view(request: Request, *, errors: list[FieldError] | None = None,
          form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    state = web_state(request)
    with state.sessions() as session:
        controllers = [(code, f"{name} ({code})") for code, name in session.execute(
            select(Controller.code, Controller.name).order_by(Controller.name))]
    categories = [(c, state.policy.category_label(c)) for c in sorted(state.policy.categories)]
    return render(request, "groups.html", title="Review groups",
                  groups=groups.list_groups(context_for(request)), controllers=controllers,
                  categories=categories, error_summary=errors, errors=errors or [],
                  form=form or {}, status_code=status_code)


@router.get("/groups", name="groups_page")
def groups_page(request: Request) -> HTMLResponse:
    return _view(request)


async def _do(request: Request, field: str, action: object, flash: str,
              form_values: dict[str, str]) -> Response:
    try:
        await run_in_threadpool(action)  # type: ignore[arg-type]
    except LifecycleError as exc:
        message = str(exc)
        for prefix in ("group: ", "user: ", "label: ", "--controller: ", "--category: "):
            message = message.removeprefix(prefix)
        errors = [FieldError(field, message[:1].upper() + message[1:])]
        return await run_in_threadpool(
            lambda: _view(request, errors=errors, form=form_values, status_code=400))
    return redirect("/groups", flash=flash)


@router.post("/groups", name="groups_add")
async def groups_add(request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "").strip()
    label = str(form.get("label") or "").strip() or None
    if not name:
        return await run_in_threadpool(lambda: _view(
            request, errors=[FieldError("name", "Enter a name for the group")],
            form={"label": label or ""}, status_code=400))
    ctx = context_for(request)
    return await _do(request, "name", lambda: groups.add_group(ctx, name, label=label),
                     f"Review group {name.lower()} is added.",
                     {"name": name, "label": label or ""})


@router.post("/groups/{name}/members", name="groups_member_add")
async def groups_member_add(request: Request, name: str) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    field = f"username-{name}"
    if not username:
        return await run_in_threadpool(lambda: _view(
            request, errors=[FieldError(field, "Enter the user name of the member to add")],
            status_code=400))
    ctx = context_for(request)
    return await _do(request, field, lambda: groups.add_member(ctx, name, username),
                     f"{username} is a member of {name}.", {field: username})


@router.post("/groups/{name}/members/{username}/remove", name="groups_member_remove")
async def groups_member_remove(request: Request, name: str, username: str) -> Response:
    ctx = context_for(request)
    return await _do(request, f"username-{name}",
                     lambda: groups.remove_member(ctx, name, username),
                     f"{username} is no longer a member of {name}.", {})


@router.post("/groups/{name}/scope", name="groups_scope")
async def groups_scope(request: Request, name: str) -> Response:
    form = await request.form()
    controllers = [str(v) for v in form.getlist("controllers")]
    categories = [str(v) for v in form.getlist("categories")]
    clear = not controllers and not categories
    ctx = context_for(request)
    flash = (f"Group {name} may review every case (no scope)." if clear else
             f"Group {name}'s scope is saved.")
    return await _do(request, f"scope-{name}",
                     lambda: groups.set_scope(ctx, "group", name, controllers=controllers,
                                              categories=categories, clear=clear),
                     flash, {})
