"""Keep stored due dates true to the facts and the policy in force.

A record's decision is stored with the digest of its category's rules; after a policy change
only the records of categories whose rules changed are recomputed. A case whose basis changed
(its due date moved) is withdrawn, so that nothing is disposed of on a stale decision.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context
from retentiond.policy import Decision, Facts, PolicySet, decide
from retentiond.registry.models import (
    OPEN_STATES,
    Agreement,
    Approval,
    Disposal,
    PolicyVersion,
    Record,
    Subject,
)

BATCH = 5000
#: Distinct decisions remembered for a policy version: they are keyed by dates, so a few tens
#: of thousands cover a council (48,000 for the benchmark's 1M estate); at about 300 bytes each,
#: the bound keeps memory flat (under 30 MiB) whatever the estate.
DECISION_CACHE = 100_000

_FACT_COLUMNS = (
    Record.id, Record.category, Record.opened_on, Record.closed_on, Record.event_on,
    Record.flags, Subject.date_of_birth, Subject.date_of_death,
    Agreement.disposal_due_on, Agreement.termination_action,
)


@dataclass(frozen=True, kw_only=True)
class RecomputeResult:
    """How many records were looked at, how many changed, and what was withdrawn."""

    recomputed: int
    changed: int
    relabelled: int
    withdrawn: int


def facts_from_row(row: Sequence[Any]) -> Facts:
    """Facts from a row of ``_FACT_COLUMNS`` (and any columns after them)."""
    (_id, category, opened_on, closed_on, event_on, flags, dob, dod, terminated_on,
     termination_action) = row[:10]
    return Facts(
        category=category, date_of_birth=dob, date_of_death=dod, opened_on=opened_on,
        closed_on=closed_on, event_on=event_on,
        flags=frozenset(f for f in (flags or "").split(";") if f),
        terminated_on=terminated_on, termination_action=termination_action,
    )


def fact_query() -> Any:
    """Records joined with what their decision depends on."""
    return (
        select(*_FACT_COLUMNS)
        .outerjoin(Subject, Subject.id == Record.subject_id)
        .outerjoin(
            Agreement,
            and_(Agreement.id == Record.agreement_id, Agreement.status == "terminated"),
        )
    )


def _recompute_query() -> Any:
    # The facts and, last, the stored due date, so that counting changes needs no second query.
    return fact_query().add_columns(Record.due_on)


#: Where each fact is in a row of ``_FACT_COLUMNS``.
_FACT_INDEX = {"category": 1, "opened_on": 2, "closed_on": 3, "event_on": 4, "flags": 5,
               "date_of_birth": 6, "date_of_death": 7, "terminated_on": 8,
               "termination_action": 9}
#: The facts each kind of condition reads (``retentiond.policy.engine._holds``).
_CONDITION_READS = {
    "has_flags": ("flags",), "lacks_flags": ("flags",), "deceased": ("date_of_death",),
    "died_before_age": ("date_of_birth", "date_of_death"),
    "age_at_closure_at_least": ("date_of_birth", "closed_on"),
    "age_at_closure_below": ("date_of_birth", "closed_on"),
}


def facts_read(policy: PolicySet, category: str) -> tuple[str, ...] | None:
    """The facts that decisions for ``category`` can depend on: its rules' triggers and the
    facts their conditions test, and the agreement's termination (which ``decide`` always
    reads). None when a condition tests something this does not know about."""
    read = {"category", "terminated_on", "termination_action"}
    for rule in policy.rules_for(category):
        for condition in (rule.when, *(alt.when for alt in rule.alternatives)):
            for f in dataclasses.fields(condition):
                value = getattr(condition, f.name)
                if value is None or value == frozenset():
                    continue
                if f.name not in _CONDITION_READS:
                    return None
                read.update(_CONDITION_READS[f.name])
        read.update(alt.trigger for alt in rule.alternatives)
    if not read <= _FACT_INDEX.keys():
        return None
    return tuple(sorted(read))


#: What a record stores of its decision (besides the policy version and rules digest).
_DECISION_COLUMNS = ("due_on", "due_action", "due_rule", "approvals_required", "auto_approve",
                     "needs_attention")
_Stored = tuple[dt.date | None, str | None, str | None, int, bool, str | None]


def stored_decision(decision: Decision) -> _Stored:
    """The values of ``_DECISION_COLUMNS`` for a decision."""
    return (decision.due_on, decision.action, decision.rule_id, decision.approvals_required,
            decision.auto_approve, decision.needs_attention)


class _Decider:
    """What to store for rows of ``_FACT_COLUMNS``, remembered by the facts the rules read.

    Two records whose rules read the same facts get the same decision (a pupil record's due
    date depends on the date of birth alone), and a council has far fewer distinct dates than
    records, so most rows are answered without running the engine. Only the stored values are
    remembered, and only so many, so that memory stays flat whatever the estate.
    """

    def __init__(self, policy: PolicySet) -> None:
        self.policy = policy
        self.keys: dict[str, tuple[int, ...] | None] = {}
        self.cache: dict[tuple[Any, ...], _Stored] = {}

    def __call__(self, row: Sequence[Any]) -> _Stored:
        category = row[1]
        if category not in self.keys:
            read = facts_read(self.policy, category)
            self.keys[category] = None if read is None else tuple(_FACT_INDEX[f] for f in read)
        indexes = self.keys[category]
        if indexes is None:
            return stored_decision(decide(self.policy, facts_from_row(row)))
        key = tuple([row[i] for i in indexes])
        stored = self.cache.get(key)
        if stored is None:
            if len(self.cache) >= DECISION_CACHE:
                self.cache.clear()
            stored = self.cache[key] = stored_decision(decide(self.policy, facts_from_row(row)))
        return stored


_DECIDERS: dict[str, _Decider] = {}


def _decider(policy: PolicySet) -> _Decider:
    # One per policy version (a content hash: the same version decides the same way), kept
    # across batches and calls, so that an import of many small batches still hits it.
    decider = _DECIDERS.get(policy.version)
    if decider is None:
        if len(_DECIDERS) >= 2:
            _DECIDERS.clear()
        decider = _DECIDERS[policy.version] = _Decider(policy)
    return decider


_RECORDS = cast(Table, Record.__table__)
_STORE_COLUMNS = (*_DECISION_COLUMNS, "policy_version", "rules_digest", "updated_at")
_STORE_DECISION = (
    update(_RECORDS)
    .where(_RECORDS.c.id == bindparam("record_id"))
    .values({c: bindparam(c) for c in _STORE_COLUMNS})
)
_UNSEEN = object()


class _Store:
    """Writes a batch of decisions with one executemany of ``_STORE_DECISION``.

    Rows go to the driver through SQLAlchemy's own bind processors for each column (so values
    are stored exactly as before), without its per-row parameter bookkeeping, which costs more
    than SQLite's own work.
    """

    def __init__(self, dialect: Dialect) -> None:
        compiled = _STORE_DECISION.compile(dialect=dialect)
        self.sql = compiled.string
        names = (*_STORE_COLUMNS, "record_id")
        #: For each driver parameter, in order: its name and where it is in a row.
        self.positional = compiled.positiontup is not None
        order = compiled.positiontup if compiled.positiontup is not None else list(names)
        self.params = tuple((n, names.index(n)) for n in order)
        self.processors = tuple(
            _RECORDS.c["id" if n == "record_id" else n].type.dialect_impl(dialect)
            .bind_processor(dialect) for n, _ in self.params)

    def write(self, session: Session, rows: list[tuple[Any, ...]]) -> None:
        """``rows`` hold the values of ``_STORE_COLUMNS``, then the record id."""
        # A batch repeats a few values (one updated_at, a few thousand due dates): each is
        # processed once, then looked up.
        steps: list[tuple[int, Any, dict[Any, Any]]] = [
            (i, p, {}) for (_, i), p in zip(self.params, self.processors, strict=True)]
        values = []
        for r in rows:
            row = []
            for i, p, seen in steps:
                v = r[i]
                if p is not None and v is not None:
                    w = seen.get(v, _UNSEEN)
                    if w is _UNSEEN:
                        w = seen[v] = p(v)
                    v = w
                row.append(v)
            values.append(row)
        if self.positional:
            params: list[Any] = [tuple(v) for v in values]
        else:
            params = [dict(zip([n for n, _ in self.params], v, strict=True)) for v in values]
        session.connection().exec_driver_sql(self.sql, params)


_STORES: dict[tuple[str, str], _Store] = {}


def _store(session: Session) -> _Store:
    dialect = session.get_bind().dialect
    key = (dialect.name, dialect.driver)
    if key not in _STORES:
        _STORES[key] = _Store(dialect)
    return _STORES[key]


def register_policy(session: Session, policy: PolicySet, now: dt.datetime) -> None:
    """Remember a policy set the first time a decision is made under it."""
    if session.get(PolicyVersion, policy.version) is None:
        session.add(
            PolicyVersion(
                version=policy.version,
                packs=[{"name": p.name, "title": p.title, "path": p.path, "sha256": p.digest}
                       for p in policy.packs],
                first_used_at=now,
            )
        )
        session.flush()


def _apply(session: Session, decider: _Decider, rows: Iterable[Sequence[Any]], now: dt.datetime,
           digests: dict[str, str]) -> tuple[int, int]:
    """Store the decisions for rows of ``_recompute_query``; return how many rows, and how many
    changed due date."""
    policy = decider.policy
    changed = 0
    updates = []
    for row in rows:
        stored = decider(row)
        rid, category = row[0], row[1]
        if category not in digests:
            digests[category] = policy.category_digest(category)
        if row[-1] != stored[0]:
            changed += 1
        updates.append((*stored, policy.version, digests[category], now, rid))
    if not updates:
        return 0, 0
    _store(session).write(session, updates)
    return len(updates), changed


def recompute_records(ctx: Context, session: Session, record_ids: Sequence[int]) -> int:
    """Recompute the given records (after an import or a change of their facts); return how
    many changed due date. Runs inside the caller's transaction."""
    changed_total = 0
    digests: dict[str, str] = {}
    decider = _decider(ctx.policy)
    now = ctx.clock.now()
    for start in range(0, len(record_ids), BATCH):
        chunk = record_ids[start:start + BATCH]
        rows = session.execute(_recompute_query().where(Record.id.in_(chunk))).all()
        _, changed = _apply(session, decider, rows, now, digests)
        changed_total += changed
    return changed_total


def recompute_where(ctx: Context, session: Session, condition: Any) -> int:
    """Recompute every record matching a SQL condition, in keyset batches; return changes."""
    digests: dict[str, str] = {}
    decider = _decider(ctx.policy)
    now = ctx.clock.now()
    last, changed_total = 0, 0
    while True:
        rows = session.execute(
            _recompute_query().where(condition, Record.id > last).order_by(Record.id).limit(BATCH)
        ).all()
        if not rows:
            return changed_total
        _, changed = _apply(session, decider, rows, now, digests)
        changed_total += changed
        last = rows[-1][0]


def _distinct(session: Session, column: Any, *where: Any) -> list[Any]:
    """The distinct non-null values of an indexed column, in order, by a loose index scan: one
    indexed ``MIN`` a value, instead of reading every row (a registry has millions of records
    and a handful of categories and digests)."""
    values: list[Any] = []
    while True:
        after = (column > values[-1],) if values else ()
        value = session.scalar(select(func.min(column)).where(*where, *after))
        if value is None:
            return values
        values.append(value)


def recompute_stale(ctx: Context) -> RecomputeResult:
    """Bring every record up to the policy in force.

    Records of categories whose rules changed (or which have never been decided) are
    recomputed in batches, one transaction a batch so that no long lock is held; the rest
    only have their policy version relabelled, since their decision cannot have changed.
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions.begin() as session:
        register_policy(session, policy, now)
        categories = _distinct(session, Record.category)
    recomputed = changed = relabelled = 0
    decider = _decider(policy)
    for category in categories:
        digest = policy.category_digest(category)
        with ctx.sessions() as session:
            stale_digests: list[str | None] = [
                d for d in _distinct(session, Record.rules_digest, Record.category == category)
                if d != digest]
            if session.scalar(select(Record.id).where(
                    Record.category == category, Record.rules_digest.is_(None)).limit(1)):
                stale_digests.append(None)
        # One pass per stale digest, each an equality on the whole (category, rules_digest)
        # index: a batch is read straight from the index, where a condition with != made
        # every batch read and sort all the category's remaining records. A recomputed record
        # takes the current digest and leaves the pass, so each batch takes the next ones.
        for old in stale_digests:
            stale = and_(Record.category == category, Record.rules_digest.is_(None)
                         if old is None else Record.rules_digest == old)
            while True:
                with ctx.sessions.begin() as session:
                    rows = session.execute(_recompute_query().where(stale).limit(BATCH)).all()
                    if not rows:
                        break
                    n, c = _apply(session, decider, rows, now, {category: digest})
                    recomputed, changed = recomputed + n, changed + c
        with ctx.sessions.begin() as session:
            result = session.execute(
                update(Record)
                .where(Record.category == category, Record.rules_digest == digest,
                       Record.policy_version != policy.version)
                .values(policy_version=policy.version)
            )
            relabelled += int(getattr(result, "rowcount", 0) or 0)
    with ctx.sessions.begin() as session:
        withdrawn = withdraw_stale_cases(ctx, session)
    return RecomputeResult(
        recomputed=recomputed, changed=changed, relabelled=relabelled, withdrawn=withdrawn
    )


#: Why a live case is withdrawn: what it was opened on no longer holds.
WITHDRAWN_REASON = ("the record's decision changed (facts or policy): due date, action, rule or "
                    "number of approvers")


def withdraw_stale_cases(ctx: Context, session: Session) -> int:
    """Withdraw every live case whose record's decision is no longer the one it was opened on:
    a different (or no) due date, action, rule or number of approvers. A case opened under a
    rule that needed one approver must not be approved by one person once the policy asks for
    two. Its approvals are voided; the next evaluation opens a fresh case if the record is
    still due. Executing cases are left to the executor, which re-checks."""
    now = ctx.clock.now()
    stale = list(session.execute(
        select(Disposal.id, Disposal.policy_version, Record.due_on, Disposal.due_on)
        .join(Record, Record.id == Disposal.record_id)
        .where(
            Disposal.state.in_([s for s in OPEN_STATES if s != "executing"]),
            or_(
                Record.due_on.is_(None),
                Record.due_on != Disposal.due_on,
                Record.due_action.is_(None),
                Record.due_action != Disposal.action,
                Record.due_rule.is_(None),
                Record.due_rule != Disposal.rule_id,
                Record.approvals_required != Disposal.approvals_required,
            ),
        )
    ))
    if not stale:
        return 0
    ids = [row[0] for row in stale]
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        session.execute(
            update(Disposal).where(Disposal.id.in_(chunk))
            .values(state="withdrawn", updated_at=now, reason=WITHDRAWN_REASON)
        )
        session.execute(
            update(Approval).where(Approval.disposal_id.in_(chunk), Approval.voided_at.is_(None))
            .values(voided_at=now)
        )
    for disposal_id, _version, new_due, old_due in stale:
        record_event(
            session, kind="DisposalWithdrawn", actor="retentiond", entity="disposal",
            entity_id=disposal_id, at=now, policy_version=ctx.policy.version,
            reason=WITHDRAWN_REASON,
            data={"old_due_on": old_due.isoformat(),
                  "new_due_on": new_due.isoformat() if new_due else None},
        )
    return len(ids)


def count_needing_attention(session: Session) -> int:
    """Records that can never fall due until someone supplies a missing fact."""
    return int(session.scalar(
        select(func.count()).select_from(Record).where(Record.needs_attention.is_not(None))
    ) or 0)
