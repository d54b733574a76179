"""The audit trail: one event per state change, written in the same transaction."""

from __future__ import annotations

from retentiond.audit.chain import verify
from retentiond.audit.events import record_event
from retentiond.registry.chain import head_hash, note_inserted

__all__ = ["head_hash", "note_inserted", "record_event", "verify"]
