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

Sealing lives with the registry's sessions (``retentiond.registry.chain``), so that nothing
that writes to the registry can leave an event out; this module walks and checks the chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from retentiond.registry.chain import GENESIS, head, link
from retentiond.registry.models import AuditEvent

__all__ = ["GENESIS", "Problem", "Verification", "head", "link", "verify"]

#: Events read per query while walking the chain.
_BATCH = 5000


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
