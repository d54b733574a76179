"""The audit trail: one event per state change, written in the same transaction."""

from __future__ import annotations

from retentiond.audit.events import record_event

__all__ = ["record_event"]
