"""Export the audit trail as CSV or JSON lines, streaming, in chain order."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.clock import LONDON
from retentiond.registry.models import AuditEvent

FIELDS = ("seq", "id", "occurred_at", "kind", "actor", "entity", "entity_id", "reason",
          "policy_version", "data", "prev_hash", "hash")


def _bounds(start: dt.date | None, end: dt.date | None) -> tuple[Any, Any]:
    """London calendar dates to the UTC instants that bound them (``end`` inclusive)."""
    lo = dt.datetime.combine(start, dt.time(), LONDON).astimezone(dt.UTC) if start else None
    hi = (dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), LONDON).astimezone(dt.UTC)
          if end else None)
    return lo, hi


def events(session: Session, *, start: dt.date | None, end: dt.date | None,
           batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Events that occurred on London dates ``start`` to ``end`` (inclusive), by id."""
    lo, hi = _bounds(start, end)
    last = 0
    while True:
        query = select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(batch)
        if lo is not None:
            query = query.where(AuditEvent.occurred_at >= lo)
        if hi is not None:
            query = query.where(AuditEvent.occurred_at < hi)
        rows = list(session.scalars(query))
        if not rows:
            return
        for ev in rows:
            yield {
                "seq": ev.seq, "id": ev.id, "occurred_at": ev.occurred_at.isoformat(),
                "kind": ev.kind, "actor": ev.actor, "entity": ev.entity,
                "entity_id": ev.entity_id, "reason": ev.reason,
                "policy_version": ev.policy_version, "data": ev.data,
                "prev_hash": ev.prev_hash, "hash": ev.hash,
            }
        last = rows[-1].id
        session.expunge_all()


def write(rows: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    """Write rows as ``csv`` or ``jsonl``; return how many."""
    n = 0
    if fmt == "csv":
        w = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({**row, "data": json.dumps(row["data"], sort_keys=True, default=str)})
            n += 1
    else:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True, default=str) + "\n")
            n += 1
    return n
