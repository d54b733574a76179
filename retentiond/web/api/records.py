"""``/api/v1/records/{record_id}`` (the explanation) and ``/api/v1/me``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import Me, Record
from retentiond.web.auth import current
from retentiond.web.pages.records import load_record
from retentiond.web.wording import headline

router = APIRouter(prefix="/api/v1", tags=["records"], responses=ERRORS)


@router.get("/me", name="api_me", response_model=Me)
def api_me(request: Request) -> Me:
    """Who the caller is, as the service sees them."""
    p = current(request)
    return Me(username=p.username, roles=sorted(p.roles), controller=p.controller_code, via=p.via)


@router.get("/records/{record_id:path}", name="api_record", response_model=Record)
def api_record(request: Request, record_id: str) -> Record:
    """Why a record is due when it is: every rule considered, holds, history (audited)."""
    doc = load_record(request, record_id)
    return Record.model_validate({**doc, "headline": headline(doc)})
