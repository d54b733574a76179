"""Sealing audit events into the hash chain as they are written.

Every registry session (``registry.db.session_factory``) seals the audit events its
transaction wrote just before it commits, so no event is written outside the chain. The chain
itself, and how anyone checks it, is described in ``retentiond.audit.chain``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, event, func, select
from sqlalchemy.orm import Session

from retentiond.registry.bulk import BulkUpdate
from retentiond.registry.models import AuditEvent

GENESIS = "0" * 64
_LOCK_KEY = 74210002
_BATCH = 5000


def canonical(ev: AuditEvent | Any) -> bytes:
    """The bytes an event's hash covers: every field but the chain columns and the row id."""
    occurred = ev.occurred_at
    if isinstance(occurred, dt.datetime):
        occurred = occurred.astimezone(dt.UTC).isoformat(timespec="microseconds")
    doc = {
        "seq": ev.seq, "occurred_at": occurred, "kind": ev.kind, "actor": ev.actor,
        "entity": ev.entity, "entity_id": ev.entity_id, "reason": ev.reason,
        "policy_version": ev.policy_version, "data": ev.data,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def link(prev_hash: str, ev: AuditEvent | Any) -> str:
    """The hash of an event that follows ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(ev)).hexdigest()


def head(session: Session) -> tuple[int, str]:
    """The last sealed event's position and hash (``(0, GENESIS)`` for an empty trail)."""
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return 0, GENESIS
    return int(row[0]), str(row[1])


def head_hash(session: Session) -> str:
    """The hash a certificate quotes as the audit trail's head at issue."""
    return head(session)[1]


_PENDING = "retentiond.audit.pending"


def note_inserted(session: Session, ids: Any) -> None:
    """Tell the chain about events written with a Core ``INSERT`` (use ``RETURNING id``), so
    that they are sealed with the transaction. ORM-added events are noticed on flush."""
    session.info.setdefault(_PENDING, set()).update(int(i) for i in ids)


def _after_flush(session: Session, _context: Any) -> None:
    new = [obj.id for obj in session.new if isinstance(obj, AuditEvent)]
    if new:
        note_inserted(session, new)


def _forget(session: Session, *_args: Any) -> None:
    session.info.pop(_PENDING, None)


def seal(session: Session) -> int:
    """Chain the events this transaction wrote, in id order; return how many.

    Only this transaction's own events are sealed: a row someone wrote into the table
    directly stays outside the chain, where ``verify`` reports it.
    """
    session.flush()
    pending = sorted(session.info.pop(_PENDING, ()))
    if not pending:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
    seq, prev = head(session)
    for start in range(0, len(pending), _BATCH):
        chunk = pending[start:start + _BATCH]
        wanted = set(chunk)
        # By range, not by a list of thousands of ids: the partial index on unsealed events
        # holds little but this transaction's own; anything else in the range is skipped.
        events = session.execute(
            select(AuditEvent.id, AuditEvent.occurred_at, AuditEvent.kind, AuditEvent.actor,
                   AuditEvent.entity, AuditEvent.entity_id, AuditEvent.reason,
                   AuditEvent.policy_version, AuditEvent.data)
            .where(AuditEvent.id.between(chunk[0], chunk[-1]), AuditEvent.seq.is_(None))
            .order_by(AuditEvent.id)
        ).all()
        updates = []
        for row in events:
            if row.id not in wanted:
                continue
            seq += 1
            digest = link(prev, _Fields(seq=seq, **row._asdict()))
            updates.append((seq, prev, digest, row.id))
            prev = digest
        if updates:
            _write_seal(session, updates)
    # ORM copies of the events now hold stale chain columns.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, AuditEvent):
            session.expire(obj, ["seq", "prev_hash", "hash"])
    return len(pending)


_EVENTS = cast(Table, AuditEvent.__table__)
#: The chain columns, written a batch at a time by event id (SQLite, other drivers).
_SEAL = BulkUpdate(_EVENTS, ("seq", "prev_hash", "hash"), "event_id")
#: The same on PostgreSQL with psycopg: the values as four arrays in one statement (the
#: columns are integers and texts, which need no bind processing), a quarter faster than
#: the executemany for an evaluation's ten thousand events.
_SEAL_ARRAYS = (
    "UPDATE audit_events AS a SET seq = u.seq, prev_hash = u.prev_hash, hash = u.hash "
    "FROM unnest(%(ids)s::bigint[], %(seqs)s::bigint[], %(prevs)s::text[], "
    "%(hashes)s::text[]) AS u(id, seq, prev_hash, hash) WHERE a.id = u.id"
)


def _write_seal(session: Session, rows: list[tuple[int, str, str, int]]) -> None:
    """``rows`` hold seq, prev_hash, hash and the event id."""
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        seqs, prevs, hashes, ids = (list(c) for c in zip(*rows, strict=True))
        session.connection().exec_driver_sql(_SEAL_ARRAYS, {
            "ids": ids, "seqs": seqs, "prevs": prevs, "hashes": hashes})
    else:
        _SEAL.write(session, rows)


@dataclass(frozen=True, kw_only=True)
class _Fields:
    """An event's fields as they are once sealed (with its ``seq``)."""

    id: int
    seq: int
    occurred_at: dt.datetime
    kind: str
    actor: str
    entity: str
    entity_id: str
    reason: str | None
    policy_version: str | None
    data: Any


_installed = False


def install() -> None:
    """Seal audit events in every session before it commits (idempotent)."""
    global _installed
    if not _installed:
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "before_commit", seal)
        event.listen(Session, "after_rollback", _forget)
        _installed = True
