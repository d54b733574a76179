"""Writing audit events. Callers pass their open session, so the event commits or rolls back
with the state change it records (DESIGN.md section 6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from retentiond.registry.models import AuditEvent


def record_event(
    session: Session,
    *,
    kind: str,
    actor: str,
    entity: str,
    entity_id: object,
    at: dt.datetime,
    reason: str | None = None,
    policy_version: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add one audit event (past-tense ``kind``, e.g. ``DisposalApproved``) to the session."""
    session.add(
        AuditEvent(
            occurred_at=at, kind=kind, actor=actor, entity=entity, entity_id=str(entity_id),
            reason=reason, policy_version=policy_version, data=data or {},
        )
    )
