"""What every page needs: rendering with the shared layout, flash messages, form parsing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from retentiond.web.auth import web_state
from retentiond.web.roles import (
    MANAGE_USERS,
    REVIEW,
    VIEW,
    VIEW_AUDIT,
    VIEW_FILTERS,
    VIEW_HOLDS,
    VIEW_POLICY,
    VIEW_SOURCES,
    Principal,
)
from retentiond.web.wording import (
    ACTION_LABELS,
    HOLD_TYPE_LABELS,
    ROLE_LABELS,
    ROUNDING_LABELS,
    STATE_LABELS,
    STATE_TAGS,
    TRIGGER_LABELS,
    event_label,
    plural,
    scope_words,
)
from retentiond.wording import long_date

FLASH_COOKIE = "retentiond_flash"
NAV = (
    ("/dashboard", "Dashboard", VIEW),
    ("/queue", "Review queue", VIEW),
    ("/tasks", "Tasks", REVIEW),
    ("/holds", "Holds", VIEW_HOLDS),
    ("/filters", "Saved filters", VIEW_FILTERS),
    ("/policy", "Policy", VIEW_POLICY),
    ("/certificates", "Certificates", VIEW),
    ("/audit", "Audit", VIEW_AUDIT),
    ("/sources", "Sources", VIEW_SOURCES),
    ("/users", "Users", MANAGE_USERS),
)


@dataclass(frozen=True)
class FieldError:
    """One problem with a form, linked from the error summary to its field."""

    field: str
    text: str
    #: Where the error summary's link goes, when not the field itself (a date's day box).
    anchor: str = ""


def nav_for(principal: Principal | None, path: str) -> list[dict[str, Any]]:
    if principal is None:
        return []
    return [{"href": href, "label": label, "active": path == href or path.startswith(href + "/")}
            for href, label, perm in NAV if principal.can(perm)]


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the shared layout; a flash message set by the previous POST is shown once."""
    state = web_state(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    flash = None
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        kind, _, text = raw.partition(":")
        from urllib.parse import unquote
        flash = {"kind": kind, "text": unquote(text)}
    base = {
        "principal": principal, "nav": nav_for(principal, request.url.path),
        "policy_version": state.policy.version if principal else None,
        "flash": flash, "labels": STATE_LABELS, "tags": STATE_TAGS, "long_date": long_date,
        # Words for codes (issue 15): pages show these, the codes stay in exports and the API.
        "category_label": state.policy.category_label, "system_label": state.cfg.system_label,
        "hold_type_label": lambda t: HOLD_TYPE_LABELS.get(t, t),
        "action_label": lambda a: ACTION_LABELS.get(a, a),
        "role_label": lambda r: ROLE_LABELS.get(r, r),
        "trigger_label": lambda t: TRIGGER_LABELS.get(t, t.replace("_", " ")),
        "rounding_label": lambda r: ROUNDING_LABELS.get(r, r.replace("_", " ")),
        "event_label": event_label, "plural": plural,
        "scope_words": lambda scope: scope_words(scope, state.policy.category_label),
        "with_labels": lambda text: with_labels(text, state.policy),
    }
    base.update(context)
    response: HTMLResponse = state.templates.TemplateResponse(
        request, template, base, status_code=status_code)
    if raw:
        response.delete_cookie(FLASH_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def with_labels(text: str, policy: Any) -> str:
    """Category codes in a sentence made by the lifecycle (a filter's or hold's criteria in
    words) replaced by their labels: 'in category "Safeguarding referral"'."""
    for code in sorted(policy.categories, key=len, reverse=True):
        if code in text:
            text = text.replace(f"category {code}", f"category \u201c{policy.category_label(code)}\u201d")
    return text


def redirect(url: str, *, flash: str | None = None, kind: str = "success") -> RedirectResponse:
    """Post/redirect/get, with a one-time message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, f"{kind}:{quote(flash)}", path="/", httponly=True,
                            samesite="lax", max_age=60)
    return response


def query_string(params: dict[str, str]) -> str:
    return urlencode({k: v for k, v in params.items() if v != ""})


def parse_date_input(form: Any, field: str, label: str, errors: list[FieldError], *,
                     required: bool) -> dt.date | None:
    """A GOV.UK date input (day, month, year) -> a date, or a FieldError naming the field."""
    parts = [str(form.get(f"{field}-{p}", "") or "").strip() for p in ("day", "month", "year")]
    anchor = f"{field}-day"
    if not any(parts):
        if required:
            errors.append(FieldError(field, f"Enter the {label}", anchor))
        return None
    if not all(parts):
        missing = " and ".join(p for p, v in zip(("day", "month", "year"), parts, strict=True)
                               if not v)
        errors.append(FieldError(field, f"The {label} must include a {missing}",
                                 f"{field}-{missing.split()[0]}"))
        return None
    if not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
        errors.append(FieldError(field, f"The {label} must be a real date, for example 27 3 2027",
                                 anchor))
        return None
    try:
        return dt.date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        errors.append(FieldError(field, f"The {label} must be a real date, for example 27 3 2027",
                                 anchor))
        return None


def date_parts(form: Any, field: str) -> dict[str, str]:
    return {p: str(form.get(f"{field}-{p}", "") or "") for p in ("day", "month", "year")}


def parts_of(day: dt.date | None) -> dict[str, str]:
    """A date as a GOV.UK date input's values (to show a filter as applied)."""
    if day is None:
        return {}
    return {"day": str(day.day), "month": str(day.month), "year": str(day.year)}


def filter_date(params: Any, field: str, label: str, errors: list[FieldError]) -> dt.date | None:
    """A date filter from a query string: the date input's day, month and year, or an ISO
    date under the field's own name (links, saved filters and the API use that)."""
    if any(params.get(f"{field}-{p}") for p in ("day", "month", "year")):
        return parse_date_input(params, field, label, errors, required=False)
    value = params.get(field) or ""
    if not value:
        return None
    parsed = parse_iso(value)
    if parsed is None:
        errors.append(FieldError(field, f"The {label} must be a real date, for example 27 3 2027",
                                 f"{field}-day"))
    return parsed


def parse_iso(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None
