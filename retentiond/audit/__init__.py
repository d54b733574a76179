"""The audit trail: one event per state change, written in the same transaction."""

from __future__ import annotations

from retentiond.audit.chain import head_hash, note_inserted, verify
from retentiond.audit.events import record_event

__all__ = ["head_hash", "note_inserted", "record_event", "verify"]
