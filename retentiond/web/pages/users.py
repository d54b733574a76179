"""Users (admin): who can sign in, with what roles; add one, disable, sign out everywhere;
list and revoke API tokens (never make one: a token is made by its own user, ``account.py``).
The command line (``retentiond users``) does the same."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.registry.models import Controller, ReviewScope
from retentiond.web.accounts import add_user, disable_user, list_users, revoke_sessions
from retentiond.web.auth import context_for, web_state
from retentiond.web.pages.common import FieldError, redirect, render
from retentiond.web.pages.groups import save_scope, scope_choices
from retentiond.web.roles import ROLES
from retentiond.web.sessions import list_tokens, revoke_token
from retentiond.web.wording import ROLE_LABELS

router = APIRouter(include_in_schema=False)

ROLE_NOUNS = {"admin": "an administrator", "ig_officer": "an IG officer",
              "approver": "an approver", "auditor": "an auditor",
              "controller": "a controller's user",
              "feeder": "a feeder (a system that pushes records)"}
ROLE_HINTS = {
    "ig_officer": "reviews the queue: defers, rejects, places and lifts holds",
    "approver": "approves disposals (a rule may need two different approvers)",
    "auditor": "reads everything, including the audit trail; changes nothing",
    "admin": "manages users, and can do what an IG officer does (not approve)",
    "controller": "a school's or trust's user: sees only its own organisation's records",
}


def _own_scopes(request: Request) -> dict[str, list[tuple[str | None, str | None]]]:
    """Each user's own scope rows (not their groups'), by user name."""
    out: dict[str, list[tuple[str | None, str | None]]] = {}
    with web_state(request).sessions() as session:
        for user, controller, category in session.execute(
                select(ReviewScope.principal, ReviewScope.controller, ReviewScope.category)
                .where(ReviewScope.principal_kind == "user").order_by(ReviewScope.id)):
            out.setdefault(user, []).append((controller, category))
    return out


def _users_view(request: Request, *, errors: list[FieldError] | None = None,
                form: dict[str, str] | None = None, status_code: int = 200,
                **extra: Any) -> HTMLResponse:
    ctx = context_for(request)
    users = list_users(ctx)
    tokens = list_tokens(ctx)
    return render(request, "users.html", title="Users", users=users, tokens=tokens,
                  scopes=_own_scopes(request), **scope_choices(request),
                  error_summary=errors, errors=errors or [], form=form or {},
                  status_code=status_code, **extra)


@router.get("/users", name="users_page")
def users_page(request: Request) -> HTMLResponse:
    return _users_view(request)


def _controllers(request: Request) -> list[tuple[str, str]]:
    with web_state(request).sessions() as session:
        return [(code, f"{name} ({code})") for code, name in session.execute(
            select(Controller.code, Controller.name).order_by(Controller.name))]


def _new_user_view(request: Request, *, errors: list[FieldError] | None = None,
                   form: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
    return render(request, "user_new.html", title="Add a user",
                  roles=[(r, ROLE_LABELS[r], ROLE_HINTS[r]) for r in
                         ("ig_officer", "approver", "auditor", "admin", "controller")],
                  controllers=_controllers(request),
                  oidc=web_state(request).settings.oidc is not None,
                  error_summary=errors, errors=errors, form=form or {"sign_in": "password"},
                  status_code=status_code)


@router.get("/users/new", name="users_new_form")
def users_new_form(request: Request) -> HTMLResponse:
    return _new_user_view(request)


#: Words in the lifecycle's refusals -> the field they are about.
_FIELD_OF = (("password", "password"), ("user name", "username"), ("exists already", "username"),
             ("controller", "controller"), ("role", "roles"))


@router.post("/users", name="users_add")
async def users_add(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    display_name = str(form.get("display_name") or "").strip() or None
    roles = [r for r in (str(v) for v in form.getlist("roles")) if r in ROLES]
    controller = str(form.get("controller") or "") or None
    sign_in = str(form.get("sign_in") or "")
    password = str(form.get("password") or "")
    errors: list[FieldError] = []
    if not username:
        errors.append(FieldError("username", "Enter a user name"))
    if not roles:
        errors.append(FieldError("roles", "Choose at least one role", "roles-ig_officer"))
    if "controller" in roles and controller is None:
        errors.append(FieldError("controller", "Choose the organisation this user belongs to"))
    if "controller" not in roles:
        controller = None
    oidc = web_state(request).settings.oidc is not None
    if sign_in not in ("password", "oidc") or (sign_in == "oidc" and not oidc):
        errors.append(FieldError("sign_in", "Choose how the user signs in", "sign_in-password"))
    if sign_in == "password" and password != str(form.get("password_again") or ""):
        errors.append(FieldError("password_again", "The two passwords are different"))
    values = {"username": username, "display_name": display_name or "", "roles": roles,
              "controller": controller or "", "sign_in": sign_in}
    if not errors:
        try:
            user = await run_in_threadpool(
                add_user, context_for(request), username=username, roles=",".join(roles),
                password=password if sign_in == "password" else None, controller=controller,
                display_name=display_name)
        except LifecycleError as exc:
            message = str(exc).replace("needs --controller CODE", "needs an organisation")
            field = next((f for words, f in _FIELD_OF if words in message), "username")
            errors.append(FieldError(field, message[:1].upper() + message[1:]))
    if errors:
        return await run_in_threadpool(lambda: _new_user_view(request, errors=errors, form=values,
                                                              status_code=400))
    roles_text = " and ".join(ROLE_NOUNS[r] for r in user.roles)
    return redirect("/users", flash=f"{user.username} is added as {roles_text}.")


@router.post("/users/{username}/disable", name="users_disable")
def users_disable(request: Request, username: str) -> Response:
    try:
        disable_user(context_for(request), username)
    except LifecycleError as exc:
        return redirect("/users", flash=str(exc), kind="important")
    return redirect("/users", flash=f"{username} is disabled and signed out everywhere.")


@router.post("/users/{username}/revoke-sessions", name="users_revoke_sessions")
def users_revoke_sessions(request: Request, username: str) -> Response:
    from retentiond.web.wording import plural

    try:
        n = revoke_sessions(context_for(request), username)
    except LifecycleError as exc:
        return redirect("/users", flash=str(exc), kind="important")
    return redirect("/users", flash=f"{username} is signed out of {plural(n, 'session')}.")


@router.post("/users/{username}/scope", name="users_scope")
async def users_scope(request: Request, username: str) -> Response:
    """What one user may review, of their own (their groups' scopes add to it): the same form
    and rules as a group's (``groups.save_scope``), audited ``ReviewScopeSet``."""
    return await save_scope(request, "user", username, back="/users", view=_users_view)


@router.post("/users/tokens/{token_id:int}/revoke", name="users_revoke_token")
def users_revoke_token(request: Request, token_id: int) -> Response:
    if token_id > 2**62:
        raise HTTPException(status_code=404, detail=f"no API token {token_id}")
    try:
        view = revoke_token(context_for(request), token_id)
    except LifecycleError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return redirect("/users", flash=f"API token {view.name!r} of {view.username} is revoked.")
