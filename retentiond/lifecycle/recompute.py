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

from sqlalchemy import (
    Column,
    Date,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from retentiond.lifecycle.context import Context
from retentiond.lifecycle.review import AUTO_APPROVER
from retentiond.lifecycle.sql import move_cases
from retentiond.policy import Decision, Facts, PolicySet, decide_safely
from retentiond.registry.bulk import BulkUpdate
from retentiond.registry.chain import note_inserted
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    OPEN_STATES,
    Agreement,
    Approval,
    AuditEvent,
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
            return stored_decision(decide_safely(self.policy, facts_from_row(row)))
        key = tuple([row[i] for i in indexes])
        stored = self.cache.get(key)
        if stored is None:
            if len(self.cache) >= DECISION_CACHE:
                self.cache.clear()
            stored = self.cache[key] = stored_decision(decide_safely(self.policy, facts_from_row(row)))
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
_SUBJECTS = cast(Table, Subject.__table__)
_AGREEMENTS = cast(Table, Agreement.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)
_STORE_COLUMNS = (*_DECISION_COLUMNS, "policy_version", "rules_digest", "updated_at")
#: Stored decisions, written a batch at a time by record id.
_STORE = BulkUpdate(_RECORDS, _STORE_COLUMNS, "record_id")


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
    _STORE.write(session, updates)
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


#: Records relabelled (policy version only) per transaction.
RELABEL_BATCH = 50_000


def _fact_sources(records: Any) -> tuple[Any, dict[str, Any]]:
    """``records`` (a table or alias) joined with what its decisions depend on, as
    ``fact_query`` joins them, and the column each fact of ``_FACT_INDEX`` is read from."""
    joined = records.outerjoin(_SUBJECTS, _SUBJECTS.c.id == records.c.subject_id).outerjoin(
        _AGREEMENTS,
        and_(_AGREEMENTS.c.id == records.c.agreement_id, _AGREEMENTS.c.status == "terminated"),
    )
    return joined, {
        "category": records.c.category, "opened_on": records.c.opened_on,
        "closed_on": records.c.closed_on, "event_on": records.c.event_on,
        "flags": records.c.flags, "date_of_birth": _SUBJECTS.c.date_of_birth,
        "date_of_death": _SUBJECTS.c.date_of_death,
        "terminated_on": _AGREEMENTS.c.disposal_due_on,
        "termination_action": _AGREEMENTS.c.termination_action,
    }


_NULL = literal_column("'n'", String)


def fact_key(columns: Sequence[Any]) -> Any:
    """A text the database computes from fact columns, equal for two rows exactly when their
    values are (NULL included): dates as their 10-character text, texts prefixed with their
    length, NULL as ``n``, so that no two different tuples give the same text."""
    key: Any = None
    for column in columns:
        if isinstance(column.type, Date):
            part = func.coalesce(sql_cast(column, String), _NULL)
        else:
            part = func.coalesce(
                sql_cast(func.length(column), String) + literal_column("':'", String)
                + sql_cast(column, String), _NULL)
        key = part if key is None else key + literal_column("'|'", String) + part
    return key


#: The distinct decisions of one category's stale records, keyed by ``fact_key`` of the facts
#: its rules read: a temporary table, private to the connection that fills it.
_DECISIONS = Table(
    "retentiond_recompute_decisions", MetaData(),
    Column("k", Text, primary_key=True),
    *(Column(c, _RECORDS.c[c].type) for c in _DECISION_COLUMNS),
    prefixes=["TEMPORARY"],
)


def _stale(records: Any, category: str, digest: str, *, by_index: bool = True) -> Any:
    """The records of ``category`` not decided under ``digest``."""
    column = records.c.category if by_index else records.c.category + literal_column("''")
    return and_(column == category,
                or_(records.c.rules_digest.is_(None), records.c.rules_digest != digest))


def _recompute_set_based(conn: Connection, policy: PolicySet, category: str, digest: str,
                         now: dt.datetime) -> tuple[int, int] | None:
    """Recompute a category's stale records set-based; return how many rows were updated and
    how many changed due date, or None when its rules test something ``facts_read`` does not
    know (the caller then decides row by row).

    The distinct combinations of the facts the category's rules read (a few tens of thousands
    for a council: dates) are decided once each and written to ``_DECISIONS``; then one
    ``UPDATE ... FROM`` a join of the records' live facts with it per window of ids, each its
    own transaction, so that no lock is held for long. A record whose facts changed since they
    were read finds no decision and keeps its stale digest, for the caller's row-by-row pass.
    """
    read = facts_read(policy, category)
    if read is None:
        return None
    decider = _decider(policy)
    records = _RECORDS.alias("r")
    joined, sources = _fact_sources(records)
    names = [n for n in read if n != "category"]
    columns = [sources[n] for n in names]
    key = fact_key(columns)
    stale = _stale(records, category, digest)
    # Schema-qualified: only ever this connection's temporary table, never a table of the name.
    temporary = f"{'pg_temp' if conn.dialect.name == 'postgresql' else 'temp'}.{_DECISIONS.name}"
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {temporary}")
    _DECISIONS.create(conn)
    conn.commit()
    try:
        # Every (facts, stored due date) pair once, with how many records have it: the due
        # dates count the records whose due date changes without reading them again. Streamed,
        # and ordered so that the pairs of one set of facts come together.
        groups = conn.execute(
            select(*columns, key, records.c.due_on, func.count(), func.min(records.c.id),
                   func.max(records.c.id))
            .select_from(joined).where(stale)
            .group_by(*columns, records.c.due_on).order_by(*columns)
            .execution_options(yield_per=BATCH)
        )
        changed = total = 0
        low: int | None = None
        high: int | None = None
        pending: list[dict[str, Any]] = []
        last_key = None
        row: list[Any] = [None] * (max(_FACT_INDEX.values()) + 1)
        row[_FACT_INDEX["category"]] = category
        for g in groups:
            k, due_on, count, first, last = g[len(names):]
            for name, value in zip(names, g[:len(names)], strict=True):
                row[_FACT_INDEX[name]] = value
            stored = decider(tuple(row))
            total += count
            if due_on != stored[0]:
                changed += count
            low = first if low is None else min(low, first)
            high = last if high is None else max(high, last)
            if k != last_key:
                pending.append({"k": k, **dict(zip(_DECISION_COLUMNS, stored, strict=True))})
                last_key = k
                if len(pending) >= BATCH:
                    conn.execute(insert(_DECISIONS), pending)
                    pending = []
        if pending:
            conn.execute(insert(_DECISIONS), pending)
        if low is None or high is None:
            return 0, 0
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {temporary}")
        conn.commit()
        # The window is read by id: ``category || ''`` keeps SQLite (which has no statistics
        # to tell it that a category is most of the table) from reading the whole category
        # through its index for every window instead.
        window = select(records.c.id.label("rid"), key.label("k")).select_from(joined).where(
            _stale(records, category, digest, by_index=False),
            records.c.id > bindparam("low"), records.c.id <= bindparam("high"),
        ).subquery("f")
        statement = (
            update(_RECORDS)
            # Stale in the row being written too: on PostgreSQL a row another transaction
            # recomputed meanwhile is re-checked against this, and left alone.
            .where(_RECORDS.c.id == window.c.rid, _DECISIONS.c.k == window.c.k,
                   or_(_RECORDS.c.rules_digest.is_(None), _RECORDS.c.rules_digest != digest))
            .values({**{c: _DECISIONS.c[c] for c in _DECISION_COLUMNS},
                     "policy_version": policy.version, "rules_digest": digest,
                     "updated_at": now})
        )
        # Windows of ids sized for about BATCH records of the category, resized as they go
        # (a category's records need not be spread evenly).
        width = max(BATCH, -(-BATCH * (high - low + 1) // total))
        updated, after = 0, low - 1
        while after < high:
            upto = min(after + width, high)
            result = conn.execute(statement, {"low": after, "high": upto})
            conn.commit()
            n = int(getattr(result, "rowcount", 0) or 0)
            updated += n
            after = upto
            if n > 2 * BATCH:
                width = max(1, width // 2)
            elif n < BATCH // 2:
                width *= 2
        conn.exec_driver_sql(f"DROP TABLE {temporary}")
        conn.commit()
        return updated, changed
    finally:
        # On an error: nothing half-done stays (each window is its own transaction); the
        # table goes with the connection, or with the next pass's DROP.
        conn.rollback()


def _recompute_row_by_row(ctx: Context, category: str, digest: str,
                          now: dt.datetime) -> tuple[int, int]:
    """Recompute a category's stale records a batch of rows at a time (each its own
    transaction); return how many, and how many changed due date."""
    decider = _decider(ctx.policy)
    recomputed = changed = 0
    with ctx.sessions() as session:
        stale_digests: list[str | None] = [
            d for d in _distinct(session, Record.rules_digest, Record.category == category)
            if d != digest]
        if session.scalar(select(Record.id).where(
                Record.category == category, Record.rules_digest.is_(None)).limit(1)):
            stale_digests.append(None)
    # One pass per stale digest, each an equality on the (category, rules_digest) prefix of
    # the index: a batch is read straight from the index, where a condition with != made
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
    return recomputed, changed


def _relabel(ctx: Context, category: str, digest: str) -> int:
    """Give the records of ``category`` already decided under its current rules the policy
    version in force (their decision cannot have changed), RELABEL_BATCH a transaction."""
    version = ctx.policy.version
    relabelled = 0
    # Two ranges of the (category, rules_digest, policy_version) index, each its own statement
    # (PostgreSQL's planner reads a table rather than two ranges for an OR), empty when
    # nothing changed; ``!=`` would read every record of the category. NULL versions, as
    # before, are left alone.
    for behind in (Record.policy_version < version, Record.policy_version > version):
        batch = select(Record.id).where(
            Record.category == category, Record.rules_digest == digest, behind,
        ).limit(RELABEL_BATCH)
        while True:
            with ctx.sessions.begin() as session:
                result = session.execute(
                    update(Record).where(Record.id.in_(batch.scalar_subquery()))
                    .values(policy_version=version)
                    .execution_options(synchronize_session=False)
                )
                n = int(getattr(result, "rowcount", 0) or 0)
            relabelled += n
            if n < RELABEL_BATCH:
                break
    return relabelled


def _has_stale(session: Session, category: str, digest: str) -> bool:
    """Whether any record of ``category`` was decided under other rules, or never: a few
    index probes (a loose scan of its digests, and one for NULL), never a read of the
    category's records."""
    if any(d != digest for d in _distinct(session, Record.rules_digest,
                                          Record.category == category)):
        return True
    return session.scalar(select(Record.id).where(
        Record.category == category, Record.rules_digest.is_(None)).limit(1)) is not None


def recompute_stale(ctx: Context) -> RecomputeResult:
    """Bring every record up to the policy in force.

    Only the records of categories whose rules changed (or which have never been decided) are
    recomputed, set-based and in windows of ids, one transaction a window so that no long lock
    is held; the rest only have their policy version relabelled, in batches, since their
    decision cannot have changed.
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions.begin() as session:
        register_policy(session, policy, now)
        categories = _distinct(session, Record.category)
        bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    recomputed = changed = relabelled = 0
    for category in categories:
        digest = policy.category_digest(category)
        with ctx.sessions() as session:
            any_stale = _has_stale(session, category, digest)
        if any_stale:
            with engine.connect() as conn:
                done = _recompute_set_based(conn, policy, category, digest, now)
            if done is not None:
                recomputed, changed = recomputed + done[0], changed + done[1]
            # What the set-based pass could not decide (a category whose rules it cannot
            # key), or missed (facts changed meanwhile): row by row.
            n, c = _recompute_row_by_row(ctx, category, digest, now)
            recomputed, changed = recomputed + n, changed + c
        relabelled += _relabel(ctx, category, digest)
    with write_transaction(ctx.sessions) as session:
        withdrawn = withdraw_stale_cases(ctx, session)
    return RecomputeResult(
        recomputed=recomputed, changed=changed, relabelled=relabelled, withdrawn=withdrawn
    )


#: Live cases a changed decision withdraws; ``executing`` ones are left to the executor,
#: which re-checks under its lease.
WITHDRAWABLE = tuple(s for s in OPEN_STATES if s != "executing")
#: Why a live case is withdrawn: what it was opened on no longer holds.
WITHDRAWN_REASON = ("the record's decision changed (facts or policy): due date, action, rule or "
                    "number of approvers")
#: Why an automatically approved case is withdrawn when nothing else about it changed.
AUTO_APPROVAL_WITHDRAWN_REASON = ("the record's rule no longer allows automatic approval "
                                  "(policy change): a person must review it")


def withdraw_stale_cases(ctx: Context, session: Session) -> int:
    """Withdraw every live case whose record's decision is no longer the one it was opened on:
    a different (or no) due date, action, rule or number of approvers, or an automatic
    approval its rule no longer allows. A case opened under a rule that needed one approver
    must not be approved by one person once the policy asks for two, nor disposed of on an
    approval nobody gave once the policy asks for a person. Its approvals are voided; the next
    evaluation opens a fresh case if the record is still due. Executing cases are left to the
    executor, which re-checks."""
    now = ctx.clock.now()
    auto_approved = (
        select(Approval.id)
        .where(Approval.disposal_id == Disposal.id, Approval.approver == AUTO_APPROVER,
               Approval.voided_at.is_(None))
        .exists()
    )
    query = (
        select(Disposal.id, Record.due_on, Disposal.due_on, Record.due_action, Disposal.action,
               Record.due_rule, Disposal.rule_id, Record.approvals_required,
               Disposal.approvals_required)
        .join(Record, Record.id == Disposal.record_id)
        .where(
            Disposal.state.in_(WITHDRAWABLE),
            or_(
                Record.due_on.is_(None),
                Record.due_on != Disposal.due_on,
                Record.due_action.is_(None),
                Record.due_action != Disposal.action,
                Record.due_rule.is_(None),
                Record.due_rule != Disposal.rule_id,
                Record.approvals_required != Disposal.approvals_required,
                and_(Record.auto_approve.is_(False), auto_approved),
            ),
        )
        .order_by(Disposal.id)
        .limit(BATCH)
    )
    # A chunk at a time, by id, with the audit events written by Core: a policy change can
    # withdraw a whole category's cases (100,000 at 10M records), and holding them, or an ORM
    # object per event, would make memory grow with the estate. One transaction still: the
    # caller's, so that every withdrawal commits with its event or none does.
    withdrawn, after = 0, 0
    while True:
        stale = session.execute(query.where(Disposal.id > after)).all()
        if not stale:
            return withdrawn
        after = stale[-1][0]
        # The decision changed, or (failing that) only the automatic approval went.
        reasons = {
            row[0]: WITHDRAWN_REASON if (
                row[1] is None or row[1] != row[2] or row[3] is None or row[3] != row[4]
                or row[5] is None or row[5] != row[6] or row[7] != row[8])
            else AUTO_APPROVAL_WITHDRAWN_REASON
            for row in stale}
        moved: set[int] = set()
        for reason in (WITHDRAWN_REASON, AUTO_APPROVAL_WITHDRAWN_REASON):
            these = [i for i, r in reasons.items() if r == reason]
            if not these:
                continue
            # Guarded by state: a case the executor claimed since it was read is the
            # executor's to re-check, never withdrawn from under its lease.
            done = move_cases(session, these, expected=WITHDRAWABLE, state="withdrawn",
                              updated_at=now, reason=reason)
            moved.update(done)
            if done:
                session.execute(
                    update(Approval)
                    .where(Approval.disposal_id.in_(done), Approval.voided_at.is_(None))
                    .values(voided_at=now)
                )
        events = [
            {"occurred_at": now, "kind": "DisposalWithdrawn", "actor": "retentiond",
             "entity": "disposal", "entity_id": str(disposal_id),
             "reason": reasons[disposal_id], "policy_version": ctx.policy.version,
             "data": {"old_due_on": old_due.isoformat(),
                      "new_due_on": new_due.isoformat() if new_due else None}}
            for disposal_id, new_due, old_due, *_ in stale if disposal_id in moved
        ]
        if events:
            note_inserted(session, session.scalars(
                insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True), events))
        withdrawn += len(moved)


def count_needing_attention(session: Session) -> int:
    """Records that can never fall due until someone supplies a missing fact."""
    return int(session.scalar(
        select(func.count()).select_from(Record).where(Record.needs_attention.is_not(None))
    ) or 0)
