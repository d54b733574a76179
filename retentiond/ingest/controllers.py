"""``controllers import``: the organisations that provide data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy import select

from retentiond.audit import record_event
from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.reader import RowError, read_rows
from retentiond.lifecycle.context import Context
from retentiond.registry.models import Controller

_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, kw_only=True)
class ControllerImport:
    rows: int
    created: int
    updated: int


def _validate(row: dict[str, str]) -> dict[str, str | None]:
    code = (row.get("code") or "").strip()
    if not _CODE_RE.match(code):
        raise RowError("code", f"{code!r} is not a code (letters, digits, '.', '_', '-'; up to 64)")
    name = (row.get("name") or "").strip()
    if not name:
        raise RowError("name", "is required")
    email = (row.get("email") or "").strip()
    if not _EMAIL_RE.match(email):
        raise RowError("email", f"{email!r} is not an email address")
    webhook = (row.get("webhook_url") or "").strip() or None
    if webhook is not None:
        url = urlparse(webhook)
        if url.scheme not in ("https", "http") or not url.netloc:
            raise RowError("webhook_url", f"{webhook!r} is not an http(s) URL")
    return {"code": code, "name": name, "email": email, "webhook_url": webhook}


def import_controllers(ctx: Context, path: Path, *, fmt: str = "csv") -> ControllerImport:
    """Create or update controllers from a file; refuse the whole file if any row is wrong."""
    problems: list[str] = []
    more = 0
    rows: dict[str, tuple[int, dict[str, str | None]]] = {}
    try:
        for line, raw in read_rows(path, fmt, required=("code", "name", "email"),
                                   optional=("webhook_url",)):
            try:
                if "__error__" in raw:
                    raise RowError(raw.get("__field__", "(row)"), raw["__error__"])
                clean = _validate(raw)
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
