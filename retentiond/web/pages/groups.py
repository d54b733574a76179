"""Review groups (admin): the groups a rule's stages name, their members, and what a group
may review (its scope). The command line (``retentiond groups``, ``users scope``) does the
same; the rules are in ``lifecycle/scopes.py`` and docs/web.md."""

from __future__ import annotations

from collections.abc import Callable

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


def scope_choices(request: Request) -> dict[str, list[tuple[str, str]]]:
    """What a scope form offers (``_scope_form.html``): every controller and every category
    of the policy in force, each with its words."""
    state = web_state(request)
    with state.sessions() as session:
        controllers = [(code, f"{name} ({code})") for code, name in session.execute(
            select(Controller.code, Controller.name).order_by(Controller.name))]
    categories = [(c, state.policy.category_label(c)) for c in sorted(state.policy.categories)]
    return {"controllers": controllers, "categories": categories}


def _view(request: Request, *, errors: list[FieldError] | None = None,
          form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "groups.html", title="Review groups",
                  groups=groups.list_groups(context_for(request)), **scope_choices(request),
                  error_summary=errors, errors=errors or [], form=form or {},
                  status_code=status_code)


async def run_form_action(request: Request, field: str, action: object, flash: str,
                          back: str, view: Callable[..., HTMLResponse],
                          form_values: dict[str, str]) -> Response:
    """Run ``action``; a refusal is shown on ``field`` of ``view`` (400), else redirect to
    ``back`` with ``flash``."""
    try:
        await run_in_threadpool(action)  # type: ignore[arg-type]
    except LifecycleError as exc:
        message = str(exc)
        for prefix in ("group: ", "user: ", "label: ", "--controller: ", "--category: "):
            message = message.removeprefix(prefix)
        errors = [FieldError(field, message[:1].upper() + message[1:])]
        return await run_in_threadpool(
            lambda: view(request, errors=errors, form=form_values, status_code=400))
    return redirect(back, flash=flash)


async def save_scope(request: Request, kind: str, principal: str, *, back: str,
                     view: Callable[..., HTMLResponse]) -> Response:
    """The scope form's post, for a group or a user: the ticked controllers and categories
    replace the scope (audited ``ReviewScopeSet``, as ``retentiond groups scope`` and
    ``users scope``); none ticked clears it."""
    form = await request.form()
    controllers = [str(v) for v in form.getlist("controllers")]
    categories = [str(v) for v in form.getlist("categories")]
    clear = not controllers and not categories
    ctx = context_for(request)
    who = f"Group {principal}" if kind == "group" else principal
    flash = (f"{who} may review every case (no scope)." if clear and kind == "group" else
             f"{who} has no scope of their own." if clear else f"{who}'s scope is saved.")
    return await run_form_action(
        request, f"scope-{principal}",
        lambda: groups.set_scope(ctx, kind, principal, controllers=controllers,
                                 categories=categories, clear=clear),
        flash, back, view, {})


@router.get("/groups", name="groups_page")
def groups_page(request: Request) -> HTMLResponse:
    return _view(request)


async def _do(request: Request, field: str, action: object, flash: str,
              form_values: dict[str, str]) -> Response:
    return await run_form_action(request, field, action, flash, "/groups", _view, form_values)


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
    return await save_scope(request, "group", name, back="/groups", view=_view)
