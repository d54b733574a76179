"""``/api/v1`` twins of the dashboard, policy, audit and certificates pages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from retentiond.policy import PolicyError
from retentiond.web import queries
from retentiond.web.api import ERRORS
from retentiond.web.api.schemas import (
    AuditEvent,
    AuditPage,
    Certificate,
    CertificateDetail,
    Certificates,
    Dashboard,
    Disposal,
    Policy,
    PolicyPack,
    PolicyPreview,
    PolicyPreviewRequest,
    PolicyRule,
)
from retentiond.web.auth import audit, context_for, web_state
from retentiond.web.pages.certificates import visible_certificate, visible_certificates
from retentiond.web.pages.dashboard import load_dashboard, load_notices
from retentiond.web.preview import preview, proposed_policy

router = APIRouter(prefix="/api/v1", tags=["overview"], responses=ERRORS)


@router.get("/dashboard", name="api_dashboard", response_model=Dashboard)
def api_dashboard(request: Request) -> Dashboard:
    """Counts by state, overdue and failed cases, and records due per month for 24 months."""
    d = load_dashboard(request)
    notes = load_notices(request)
    return Dashboard(
        as_of=d.as_of, by_state=d.by_state, overdue=d.overdue, overdue_days=d.overdue_days,
        needs_attention=d.needs_attention, active_holds=d.active_holds, undelivered_notices=notes["dead"],
        notices_pending=notes["pending"],
        due_by_month=d.due_by_month,
        oldest_overdue=[Disposal.model_validate(v.as_json()) for v in d.oldest_overdue],
        failed=[Disposal.model_validate(v.as_json()) for v in d.failed],
    )


@router.get("/policy", name="api_policy", response_model=Policy)
def api_policy(request: Request) -> Policy:
    """The rules in force, with their citations."""
    policy = web_state(request).policy
    return Policy(
        version=policy.version,
        packs=[PolicyPack(name=p.name, title=p.title, sha256=p.digest, signed_off_by=p.signed_off_by,
                          signed_off_on=p.signed_off_on) for p in policy.packs],
        rules=[PolicyRule(id=r.id, category=r.category, title=r.title, action=r.action,
                          approvals_required=r.approvals_required, auto_approve=r.auto_approve,
                          citation=r.citation) for r in policy.rules],
    )


@router.post("/policy/preview", name="api_policy_preview", response_model=PolicyPreview)
async def api_policy_preview(request: Request, body: PolicyPreviewRequest) -> PolicyPreview:
    """What a changed pack would move, by category; nothing is applied."""
    try:
        proposed = proposed_policy(web_state(request).policy, body.pack_text)
    except PolicyError as exc:
        raise HTTPException(status_code=400, detail="; ".join(exc.problems[:20])) from None
    result = await run_in_threadpool(preview, context_for(request), proposed)
    await run_in_threadpool(audit, request, "PolicyPreviewed", "policy", proposed.version,
                            {"changed_categories": result.changed_categories})
    return PolicyPreview.model_validate(result.as_json())


@router.get("/audit", name="api_audit", response_model=AuditPage)
def api_audit(
    request: Request,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    entity: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=200)] = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit events, newest first; pass ``next_before_id`` back as ``before_id``."""
    f = queries.AuditFilter(kind=kind, actor=actor, entity=entity, entity_id=entity_id,
                            since=since, until=until, before_id=before_id, limit=limit)
    with web_state(request).sessions() as session:
        events = queries.audit_events(session, f)
    items = [AuditEvent(id=e.id, occurred_at=e.occurred_at, kind=e.kind, actor=e.actor,
                        entity=e.entity, entity_id=e.entity_id, reason=e.reason,
                        policy_version=e.policy_version, data=e.data) for e in events]
    return AuditPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.get("/certificates", name="api_certificates", response_model=Certificates)
def api_certificates(request: Request,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Certificates:
    """Disposal certificates, newest first (a controller: its own), with notice and
    acknowledgement state."""
    return Certificates(items=[Certificate.model_validate(c.as_json())
                               for c in visible_certificates(request, limit=limit)])


@router.get("/certificates/{serial}", name="api_certificate", response_model=CertificateDetail)
def api_certificate(request: Request, serial: Annotated[str, Path(max_length=100)]) -> CertificateDetail:
    """One certificate: its signed document, notices and acknowledgements."""
    return CertificateDetail.model_validate(visible_certificate(request, serial).as_json())
