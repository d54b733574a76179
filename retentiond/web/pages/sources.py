"""Sources: each configured ``[sources.NAME]`` with its last run (outcome, counts, errors) and
next run, and the records their sources no longer list (gone at source), for review."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from retentiond.config import ConfigError
from retentiond.registry.models import Controller, Record
from retentiond.sources import load_sources, source_statuses
from retentiond.web.auth import web_state
from retentiond.web.pages.common import render

router = APIRouter(include_in_schema=False)
#: Records gone at source listed on the page (the count says how many there are).
GONE_LISTED = 200


@router.get("/sources", name="sources_page")
def sources_page(request: Request) -> HTMLResponse:
    state = web_state(request)
    problem = None
    try:
        specs = load_sources(state.cfg)
    except ConfigError as exc:  # the daemon refuses it too; the page says why
        specs, problem = (), str(exc)
    with state.sessions() as session:
        statuses = source_statuses(session, specs, state.clock.now())
        gone = session.execute(
            select(Record.record_key, Record.category, Controller.code, Record.source,
                   Record.gone_at_source_at)
            .join(Controller, Controller.id == Record.controller_id)
            .where(Record.gone_at_source_at.is_not(None))
            .order_by(Record.gone_at_source_at, Record.id).limit(GONE_LISTED)).all()
    return render(request, "sources.html", title="Sources", statuses=statuses, gone=gone,
                  gone_listed=GONE_LISTED, problem=problem)
