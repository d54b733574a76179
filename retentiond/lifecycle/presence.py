"""Is a record's data where its locator says? Asked before review, so that nobody approves the
disposal of data that is not there (issue 10, class 2).

:func:`check_presence` asks each record's connector (``exists_many``, batched per system) for
the records whose cases wait for review or execution, and keeps the answer per record, with the
SHA-256 of the locator asked about: a finding holds only while the record's system and locator
are the same (a corrected locator is simply unchecked again). The daemon runs it after each
nightly evaluation; ``retentiond disposals check`` runs it on demand.

Approving a case whose data was not found when last asked must acknowledge it
(``approve(..., acknowledge_not_found=True)``), or is refused; either way the executor's own
first-attempt check stands (DESIGN.md section 4).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from retentiond.lifecycle.context import Context
from retentiond.logs import get_logger
from retentiond.registry.models import Disposal, Record, RecordPresence

if TYPE_CHECKING:
    from retentiond.connectors import ConnectorRegistry

log = get_logger("retentiond.presence")

#: Cases whose records are checked: waiting for a person's approval, or for execution.
CHECKED_STATES = ("pending_review", "approved")
#: A finding younger than this is not asked again (the nightly run asks once a day).
DEFAULT_MAX_AGE_S = 20 * 3600
CHUNK = 500


def locator_digest(system: str | None, locator: str | None) -> str:
    return hashlib.sha256(f"{system}\x00{locator}".encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class PresenceResult:
    """What one check did, in counts."""

    checked: int = 0
    found: int = 0
    not_found: int = 0
    #: Records whose connector could not be asked (down, or a manual system).
    unchecked: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "found": self.found, "not_found": self.not_found,
                "unchecked": self.unchecked}


@dataclass(frozen=True, kw_only=True)
class Finding:
    """The last answer about a record's data, while its locator is the one asked about."""

    system: str
    found: bool
    checked_at: dt.datetime


def findings(session: Session, record_ids: Iterable[int]) -> dict[int, Finding]:
    """The current findings of these records (a finding about another locator is dropped)."""
    ids = list(record_ids)
    out: dict[int, Finding] = {}
    for start in range(0, len(ids), 5000):
        for rid, system, locator, p in session.execute(
                select(Record.id, Record.system, Record.locator, RecordPresence)
                .join(RecordPresence, RecordPresence.record_id == Record.id)
                .where(Record.id.in_(ids[start:start + 5000]))):
            if p.system == system and p.locator_sha256 == locator_digest(system, locator):
                out[rid] = Finding(system=p.system, found=p.found, checked_at=p.checked_at)
    return out


def check_presence(ctx: Context, connectors: ConnectorRegistry, *,
                   max_age_s: float = DEFAULT_MAX_AGE_S) -> PresenceResult:
    """Ask the holding systems whether the data of records with a case in
    :data:`CHECKED_STATES` is there, where no fresh finding about their locator exists."""
    from retentiond.connectors import ConnectorError, ConnectorRef, exists_each

    now = ctx.clock.now()
    with ctx.sessions() as session:
        rows = session.execute(
            select(Record.id, Record.system, Record.locator, Record.record_key)
            .join(Disposal, Disposal.record_id == Record.id)
            .where(Disposal.state.in_(CHECKED_STATES), Record.system.is_not(None),
                   Record.locator.is_not(None))).all()
        known = findings(session, [r[0] for r in rows])
    stale = [r for r in rows
             if r[0] not in known or (now - known[r[0]].checked_at).total_seconds() >= max_age_s]
    by_system: dict[str, list[tuple[int, str, str]]] = {}
    for rid, system, locator, key in stale:
        if system and locator:
            by_system.setdefault(system, []).append((rid, locator, key))
    answers: dict[int, tuple[str, str, bool]] = {}
    unchecked = 0
    for system, items in sorted(by_system.items()):
        try:
            connector = connectors.for_system(system)
        except ConnectorError:
            unchecked += len(items)
            continue
        if getattr(connector, "requires_confirmation", False):
            unchecked += len(items)  # a manual system: a person looks, not a program
            continue
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            there = exists_each(connector, [(ConnectorRef(system, loc, key), str(rid))
                                            for rid, loc, key in chunk])
            for rid, loc, _key in chunk:
                answer = there[str(rid)]
                if isinstance(answer, Exception):
                    unchecked += 1
                else:
                    answers[rid] = (system, locator_digest(system, loc), bool(answer))
    if answers:
        with ctx.sessions.begin() as session:
            ids = list(answers)
            for start in range(0, len(ids), 5000):
                session.execute(delete(RecordPresence)
                                .where(RecordPresence.record_id.in_(ids[start:start + 5000])))
            session.execute(insert(RecordPresence), [
                {"record_id": rid, "system": s, "locator_sha256": d, "found": f,
                 "checked_at": now} for rid, (s, d, f) in answers.items()])
    missing = sum(1 for *_x, f in answers.values() if not f)
    result = PresenceResult(checked=len(answers), found=len(answers) - missing,
                            not_found=missing, unchecked=unchecked)
    log.info("presence_checked", **result.as_json())
    return result
