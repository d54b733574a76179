"""``controllers import``: the organisations that provide data."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from retentiond.audit import record_event
from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.reader import RowError, read_rows, refuse_invisible
from retentiond.lifecycle.context import Context
from retentiond.notify.addresses import Resolver, WebhookAddressError, check_webhook
from retentiond.registry.models import Controller

_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, kw_only=True)
class ControllerImport:
    rows: int
    created: int
    updated: int


def _text(row: dict[str, str], field: str) -> str:
    value = row.get(field) or ""
    if not isinstance(value, str):
        raise RowError(field, f"must be text, not {value!r}")
    return refuse_invisible(field, value.strip())


def _validate(row: dict[str, str], *, allow_private: bool,
              resolver: Resolver | None) -> dict[str, str | None]:
    code = _text(row, "code")
    if not _CODE_RE.match(code):
        raise RowError("code", f"{code!r} is not a code (letters, digits, '.', '_', '-'; up to 64)")
    name = _text(row, "name")
    if not name:
        raise RowError("name", "is required")
    email = _text(row, "email")
    if not _EMAIL_RE.match(email):
        raise RowError("email", f"{email!r} is not an email address")
    webhook = _text(row, "webhook_url") or None
    if webhook is not None:
        try:
            # A name that does not resolve yet is let through: delivery checks it again.
            check_webhook(webhook, allow_private=allow_private, resolver=resolver,
                          require_resolution=False)
        except WebhookAddressError as exc:
            raise RowError("webhook_url", str(exc)) from None
    return {"code": code, "name": name, "email": email, "webhook_url": webhook}


def import_controllers(ctx: Context, path: Path, *, fmt: str = "csv",
                       allow_private_webhooks: bool = False,
                       resolver: Resolver | None = socket.getaddrinfo) -> ControllerImport:
    """Create or update controllers from a file; refuse the whole file if any row is wrong.

    A webhook URL must be https (http only to this host) and must not name or resolve to a
    link-local, metadata, unspecified or (unless ``allow_private_webhooks``) private address
    (``retentiond.notify.addresses``)."""
    problems: list[str] = []
    more = 0
    rows: dict[str, tuple[int, dict[str, str | None]]] = {}
    try:
        for line, raw in read_rows(path, fmt, required=("code", "name", "email"),
                                   optional=("webhook_url",)):
            try:
                if "__error__" in raw:
                    raise RowError(raw.get("__field__", "(row)"), raw["__error__"])
                clean = _validate(raw, allow_private=allow_private_webhooks, resolver=resolver)
                assert clean["code"] is not None
                if clean["code"] in rows:
                    raise RowError("code", f"{clean['code']!r} is also on line "
                                   f"{rows[clean['code']][0]}")
                rows[clean["code"]] = (line, clean)
            except RowError as exc:
                if len(problems) < MAX_PROBLEMS:
                    problems.append(f"{path}:{line}: {exc.field}: {exc}")
                else:
                    more += 1
    except RowError as exc:
        raise ImportRefused(str(path), [f"{path}:1: {exc.field}: {exc}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRefused(str(path), [f"{path}: cannot be read: {exc}"]) from exc
    if problems:
        raise ImportRefused(str(path), problems, more=more)
    now = ctx.clock.now()
    created = updated = 0
    with ctx.sessions.begin() as session:
        existing = {c.code: c for c in session.scalars(
            select(Controller).where(Controller.code.in_(list(rows))))}
        for code, (_line, clean) in rows.items():
            found = existing.get(code)
            if found is None:
                session.add(Controller(code=code, name=clean["name"], email=clean["email"],
                                       webhook_url=clean["webhook_url"], created_at=now,
                                       updated_at=now))
                created += 1
            elif (found.name, found.email, found.webhook_url) != (
                    clean["name"], clean["email"], clean["webhook_url"]):
                found.name = str(clean["name"])
                found.email = str(clean["email"])
                found.webhook_url = clean["webhook_url"]
                found.updated_at = now
                updated += 1
        record_event(session, kind="ControllersImported", actor=ctx.actor, entity="import",
                     entity_id=path.name, at=now,
                     data={"rows": len(rows), "created": created, "updated": updated})
    return ControllerImport(rows=len(rows), created=created, updated=updated)
