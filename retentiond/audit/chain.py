"""The hash chain over audit events: tamper-evident, verifiable by anyone with read access.

Every event gets a position (``seq``), the hash of the event before it and its own hash:
``hash = SHA-256(prev_hash || canonical form of the event)``. Events are sealed into the chain
in the transaction that writes them, just before it commits (a ``before_commit`` hook on every
session), so rows written set-based (``INSERT ... SELECT``) are covered as well. On PostgreSQL
an advisory transaction lock makes concurrent writers seal one after another.

The chain shows alteration, removal and insertion of rows by anyone who does not rewrite every
later event as well; against that, the head hash is published in each disposal certificate
(and printed by ``retentiond audit head``), so a rewritten chain no longer matches what
controllers hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
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


@dataclass(frozen=True, kw_only=True)
class Problem:
    """The first thing wrong with the chain."""

    kind: str  # altered, removed, inserted, reordered
    seq: int | None
    event_id: int | None
    message: str


@dataclass(frozen=True, kw_only=True)
class Verification:
    """The outcome of walking the chain."""

    events: int
    head_seq: int
    head_hash: str
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _walk(session: Session) -> Iterator[AuditEvent]:
    last = 0
    while True:
        batch = list(session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq)
            .limit(_BATCH)
        ))
        if not batch:
            return
        yield from batch
        last = int(batch[-1].seq or 0)
        session.expunge_all()


def verify(session: Session, *, anchors: dict[int, str] | None = None) -> Verification:
    """Walk the chain from the start; report the first altered, removed or inserted event.

    ``anchors`` maps positions to hashes known from outside (certificates): a chain rewritten
    from some point on is caught where it no longer matches one.
    """
    anchors = anchors or {}
    prev, expected, count = GENESIS, 1, 0
    stray = session.scalar(
        select(AuditEvent.id).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(1)
    )
    for ev in _walk(session):
        seq = int(ev.seq or 0)
        if seq != expected:
            return Verification(events=count, head_seq=expected - 1, head_hash=prev, problem=Problem(
                kind="removed", seq=expected, event_id=None,
                message=f"event {expected} is missing from the chain (the next present is {seq}): "
                "removed"))
        if ev.prev_hash != prev:
            return Verification(events=count, head_seq=seq - 1, head_hash=prev, problem=Problem(
                kind="removed" if ev.prev_hash is not None else "inserted", seq=seq,
                event_id=ev.id,
                message=f"event {seq} (id {ev.id}) does not follow event {seq - 1}: its "
                "previous-hash does not match; an event before it was removed or replaced"))
        if link(prev, ev) != ev.hash:
            return Verification(events=count, head_seq=seq - 1, head_hash=prev, problem=Problem(
                kind="altered", seq=seq, event_id=ev.id,
                message=f"event {seq} (id {ev.id}, {ev.kind}) was altered: its content no "
                "longer matches its hash"))
        if seq in anchors and anchors[seq] != ev.hash:
            return Verification(events=count, head_seq=seq - 1, head_hash=prev, problem=Problem(
                kind="altered", seq=seq, event_id=ev.id,
                message=f"event {seq} does not match the hash published for it: the chain was "
                "rewritten from here or earlier"))
        prev, expected, count = str(ev.hash), expected + 1, count + 1
    beyond = sorted(s for s in anchors if s >= expected)
    if beyond:
        return Verification(events=count, head_seq=expected - 1, head_hash=prev, problem=Problem(
            kind="removed", seq=beyond[0], event_id=None,
            message=f"event {beyond[0]}, whose hash was published, is missing: the chain ends "
            f"at {expected - 1}; events were removed from its end"))
    if stray is not None:
        return Verification(events=count, head_seq=expected - 1, head_hash=prev, problem=Problem(
            kind="inserted", seq=None, event_id=int(stray),
            message=f"event id {stray} is not in the chain: it was inserted outside retentiond"))
    return Verification(events=count, head_seq=expected - 1, head_hash=prev, problem=None)
