"""``POST /api/v1/records`` and ``POST /api/v1/events``: systems that push, for the ``feeder``
role, through API tokens only.

Both are idempotent by the client's ``Idempotency-Key`` header (required): the first request
with a key is carried out and its answer kept (``idempotent_requests``), in the same
transaction as what it changed; a request with the same key and the same body gets that
answer again (``Idempotent-Replayed: true``) and changes nothing; the same key with another
body is refused (409). Two requests with one key at once: the key's row is written first, so
the second waits for the first, then replays its answer. Refusals (422) are kept too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from retentiond.config import ConfigError
from retentiond.connectors import LocatorCheck
from retentiond.ingest.errors import ImportRefused
from retentiond.ingest.reader import RowError, check_object, parse_date
from retentiond.ingest.records import OPTIONAL, REQUIRED, Feed, apply_feed
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.events import EVENTS, UnknownRecord, apply_event
from retentiond.registry.models import IdempotentRequest
from retentiond.web.api import ERRORS
from retentiond.web.auth import context_for, current, web_state

router = APIRouter(prefix="/api/v1", tags=["feed"], responses=ERRORS)
#: Records in one request: a larger batch belongs in an inbox or a SQL source.
MAX_RECORDS = 10_000
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


class RecordsPush(BaseModel):
    """A batch of records, all or nothing. Each item has the records columns of
    ``records import`` (``record_id``, ``category``, ``controller`` required; ``system``,
    ``locator``, ``subject_ref``, ``date_of_birth``, ``date_of_death``, ``opened_on``,
    ``closed_on``, ``event_on``, ``flags``, ``agreement``), text values, dates as
    ``YYYY-MM-DD``."""

    records: list[Any] = Field(min_length=1, max_length=MAX_RECORDS)


class RecordsPushed(BaseModel):
    import_id: int
    rows: int
    created: int
    updated: int
    unchanged: int
    due_dates_changed: int
    cases_withdrawn: int
    gone: int
    back: int


class EventPush(BaseModel):
    """One trigger event: ``closed`` (the case closed on ``on``), ``reopened`` (the closure is
    cleared), ``event_on`` (the date a rule counts from), ``died`` (the record's subject died
    on ``on``)."""

    record_id: str = Field(min_length=1, max_length=200)
    event: str = Field(json_schema_extra={"enum": list(EVENTS)})
    on: str = Field(description="YYYY-MM-DD, not after today")


class EventApplied(BaseModel):
    record_id: str
    event: str
    on: dt.date
    changed: bool
    due_dates_changed: int
    cases_withdrawn: int


class Refused(BaseModel):
    """Why nothing was applied: each problem names the item and the field."""

    detail: str
    problems: list[str] = []


_PUSH_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": Refused, "description": "this Idempotency-Key was used with another body"},
    503: {"model": Refused, "description": "the connectors cannot be built, so locators cannot "
          "be checked; nothing applied, the key unused"},
    422: {"model": Refused, "description": "refused, nothing applied (problems name item "
          "and field)"},
}
_KEY_DOC = ("A key of the client's choosing (1 to 200 printable ASCII characters), the same on "
            "every retry of one request")


def _answer(status: int, doc: dict[str, Any], *, replayed: bool = False) -> JSONResponse:
    return JSONResponse(doc, status_code=status,
                        headers={"Idempotent-Replayed": "true"} if replayed else None)


def _stored(session: Session, username: str, key: str, route: str,
            body_sha: str) -> JSONResponse | None:
    row = session.scalar(select(IdempotentRequest).where(
        IdempotentRequest.username == username, IdempotentRequest.key == key))
    if row is None:
        return None
    if row.route != route or row.body_sha256 != body_sha:
        return _answer(409, {"detail": "this Idempotency-Key was used with another request "
                             "body: use a new key for a new request", "problems": []})
    return _answer(row.status, row.response, replayed=True)


def _once(request: Request, key: str, route: str, body: bytes,
          work: Callable[[Context, Session], dict[str, Any]]) -> JSONResponse:
    """Carry out ``work`` once per (user, key); see the module's docstring."""
    if not _KEY_RE.match(key):
        return _answer(400, {"detail": "Idempotency-Key: 1 to 200 printable ASCII characters"})
    state, ctx = web_state(request), context_for(request)
    username = current(request).username
    body_sha = hashlib.sha256(body).hexdigest()
    now = ctx.clock.now()

    def keep(session: Session, status: int, doc: dict[str, Any]) -> None:
        row = IdempotentRequest(username=username, key=key, route=route, body_sha256=body_sha,
                                status=status, response=doc, created_at=now)
        session.add(row)
        session.flush()

    with state.sessions() as session:
        replay = _stored(session, username, key, route, body_sha)
        if replay is not None:
            return replay
        session.rollback()
        try:
            with session.begin():
                # The key first: a second request with it waits here, then replays.
                keep(session, 0, {})
                doc = work(ctx, session)
                row = session.scalar(select(IdempotentRequest).where(
                    IdempotentRequest.username == username, IdempotentRequest.key == key))
                assert row is not None
                row.status, row.response = 200, doc
            return _answer(200, doc)
        except IntegrityError:
            replay = _stored(session, username, key, route, body_sha)
            if replay is None:
                raise
            return replay
        except (ImportRefused, LifecycleError) as exc:
            status = 404 if isinstance(exc, UnknownRecord) else 422
            doc = ({"detail": str(exc), "problems": list(exc.problems)}
                   if isinstance(exc, ImportRefused) else {"detail": str(exc), "problems": []})
        try:
            with session.begin():
                keep(session, status, doc)
        except IntegrityError:
            return _stored(session, username, key, route, body_sha) or _answer(status, doc)
    return _answer(status, doc)


def _locators(request: Request) -> LocatorCheck:
    """Each pushed locator is checked by its system's connector, as ``records import`` and
    the sources do (a locator the connector cannot name exactly is a wrong item, field
    ``locator``). Connectors that cannot be built are the service's fault, not the pushed
    batch's: 503, and the key stays unused so that a retry after the fix is carried out."""
    try:
        return LocatorCheck(web_state(request).holding_connectors())
    except ConfigError as exc:
        raise HTTPException(503, "the connectors' configuration cannot be read, so the "
                                 f"records' locators cannot be checked: {exc}; nothing was "
                                 "applied") from None


def _records(items: list[Any],
             locators: LocatorCheck) -> Callable[[Context, Session], dict[str, Any]]:
    allowed = set(REQUIRED) | set(OPTIONAL)

    def work(ctx: Context, session: Session) -> dict[str, Any]:
        from retentiond.sources.settings import API_SOURCE

        feed = Feed(name="records", source=API_SOURCE, where=lambda i: f"records[{i}]",
                    rows=lambda: ((i, check_object(item, allowed, "must be an object"))
                                  for i, item in enumerate(items)))
        result = apply_feed(ctx, session, feed, filename="POST /api/v1/records",
                            locators=locators)
        return {"import_id": result.import_id, **result.counts()}

    return work


@router.post("/records", name="api_records_push", response_model=RecordsPushed,
             responses=_PUSH_ERRORS)
async def api_records_push(request: Request, body: RecordsPush,
                           idempotency_key: str = Header(description=_KEY_DOC)) -> JSONResponse:
    """Create or update a batch of records, all or nothing, as ``records import`` does (a
    record's facts are replaced by its row; an unchanged row is not written). Records pushed
    here are fed by ``api``: no source reconciles them. For the ``feeder`` role."""
    raw = await request.body()
    locators = await run_in_threadpool(_locators, request)
    return await run_in_threadpool(_once, request, idempotency_key, "records", raw,
                                   _records(body.records, locators))


@router.post("/events", name="api_events_push", response_model=EventApplied,
             responses=_PUSH_ERRORS)
async def api_events_push(request: Request, body: EventPush,
                          idempotency_key: str = Header(description=_KEY_DOC)) -> JSONResponse:
    """Apply one trigger event to a record: its facts change, its due date is recomputed,
    cases whose basis changed are withdrawn, and it is audited. For the ``feeder`` role."""
    raw = await request.body()

    def work(ctx: Context, session: Session) -> dict[str, Any]:
        try:
            on = parse_date("on", body.on)
        except RowError as exc:
            raise LifecycleError(f"on: {exc}") from None
        if on is None:
            raise LifecycleError("on: is required (YYYY-MM-DD)")
        return apply_event(ctx, session, body.record_id, body.event, on).as_json()

    return await run_in_threadpool(_once, request, idempotency_key, "events", raw, work)
