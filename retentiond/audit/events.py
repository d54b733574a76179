"""Writing audit events. Callers pass their open session, so the event commits or rolls back
with the state change it records (DESIGN.md section 6)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from retentiond.registry.chain import note_inserted
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


def record_events(session: Session, *, kind: str, actor: str, entity: str, at: dt.datetime,
                  events: list[tuple[object, dict[str, Any]]], reason: str | None = None,
                  policy_version: str | None = None) -> None:
    """Add one event of ``kind`` per ``(entity_id, data)`` of ``events``, in that order, in
    one ``INSERT ... RETURNING`` instead of one ORM object each; the events are exactly
    those ``record_event`` would write, and are sealed with the transaction."""
    if not events:
        return
    ids = session.scalars(
        insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True),
        [{"occurred_at": at, "kind": kind, "actor": actor, "entity": entity,
          "entity_id": str(entity_id), "reason": reason, "policy_version": policy_version,
          "data": data or {}} for entity_id, data in events])
    note_inserted(session, ids)
