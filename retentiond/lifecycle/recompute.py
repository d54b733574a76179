"""Keep stored due dates true to the facts and the policy in force.

A record's decision is stored with the digest of its category's rules; after a policy change
only the records of categories whose rules changed are recomputed. A case whose basis changed
(its due date moved) is withdrawn, so that nothing is disposed of on a stale decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context
from retentiond.policy import Facts, PolicySet, decide
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
    """Facts from a row of ``_FACT_COLUMNS``."""
    (_id, category, opened_on, closed_on, event_on, flags, dob, dod, terminated_on,
     termination_action) = row
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


def _apply(session: Session, policy: PolicySet, rows: Iterable[Sequence[Any]], now: dt.datetime,
           digests: dict[str, str]) -> tuple[int, int]:
    current = {}
    ids = []
    updates = []
    for row in rows:
        decision = decide(policy, facts_from_row(row))
        rid, category = row[0], row[1]
        if category not in digests:
            digests[category] = policy.category_digest(category)
        ids.append(rid)
        updates.append({
            "id": rid,
            "due_on": decision.due_on,
            "due_action": decision.action,
            "due_rule": decision.rule_id,
            "approvals_required": decision.approvals_required,
            "auto_approve": decision.auto_approve,
            "needs_attention": decision.needs_attention,
            "policy_version": policy.version,
            "rules_digest": digests[category],
            "updated_at": now,
        })
    if not updates:
        return 0, 0
    for rid, due in session.execute(select(Record.id, Record.due_on).where(Record.id.in_(ids))):
        current[rid] = due
    changed = sum(1 for u in updates if current.get(u["id"]) != u["due_on"])
    session.execute(update(Record), updates)
    return len(updates), changed


def recompute_records(ctx: Context, session: Session, record_ids: Sequence[int]) -> int:
    """Recompute the given records (after an import or a change of their facts); return how
    many changed due date. Runs inside the caller's transaction."""
    changed_total = 0
    digests: dict[str, str] = {}
    now = ctx.clock.now()
    for start in range(0, len(record_ids), BATCH):
        chunk = record_ids[start:start + BATCH]
        rows = session.execute(fact_query().where(Record.id.in_(chunk))).all()
        _, changed = _apply(session, ctx.policy, rows, now, digests)
        changed_total += changed
    return changed_total


def recompute_where(ctx: Context, session: Session, condition: Any) -> int:
    """Recompute every record matching a SQL condition, in keyset batches; return changes."""
    digests: dict[str, str] = {}
    now = ctx.clock.now()
    last, changed_total = 0, 0
    while True:
        rows = session.execute(
            fact_query().where(condition, Record.id > last).order_by(Record.id).limit(BATCH)
        ).all()
        if not rows:
            return changed_total
        _, changed = _apply(session, ctx.policy, rows, now, digests)
        changed_total += changed
        last = rows[-1][0]


def recompute_stale(ctx: Context) -> RecomputeResult:
    """Bring every record up to the policy in force.

    Records of categories whose rules changed (or which have never been decided) are
    recomputed in batches, one transaction a batch so that no long lock is held; the rest
    only have their policy version relabelled, since their decision cannot have changed.
    """
    policy, now = ctx.policy, ctx.clock.now()
    with ctx.sessions.begin() as session:
        register_policy(session, policy, now)
        categories = list(session.scalars(select(Record.category).distinct()))
    recomputed = changed = relabelled = 0
    for category in categories:
        digest = policy.category_digest(category)
        stale = and_(
            Record.category == category,
            or_(Record.rules_digest.is_(None), Record.rules_digest != digest),
        )
        last = 0
        while True:
            with ctx.sessions.begin() as session:
                rows = session.execute(
                    fact_query().where(stale, Record.id > last).order_by(Record.id).limit(BATCH)
                ).all()
                if not rows:
                    break
                n, c = _apply(session, policy, rows, now, {category: digest})
                recomputed, changed, last = recomputed + n, changed + c, rows[-1][0]
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
