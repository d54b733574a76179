"""Evaluation: queue a disposal case for every record that is due and not held.

Set-based: one ``INSERT ... SELECT`` of what is due and unheld, one for its audit events, in
one transaction. The partial unique index on open cases means that running it twice, or on
two instances at once, can never queue a record twice.
"""

from __future__ import annotations

import datetime as dt
import typing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.holds import expire_holds
from retentiond.lifecycle.recompute import (
    RecomputeResult,
    fact_query,
    facts_from_row,
    recompute_stale,
)
from retentiond.lifecycle.review import AUTO_APPROVER
from retentiond.lifecycle.sql import has_open_case, no_hold_covers_record
from retentiond.logs import get_logger
from retentiond.policy import PolicySet, stages_for
from retentiond.registry.chain import note_inserted
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    Approval,
    AuditEvent,
    Disposal,
    DisposalStage,
    Evaluation,
    Record,
)

STAGE_BATCH = 5000
_DISPOSALS = typing.cast(Table, Disposal.__table__)
#: Advisory lock serialising the queueing transaction on PostgreSQL, in the two-key space
#: beside the daemon's nightly slot (742100, 1).
QUEUE_LOCK_KEY = (742100, 2)
log = get_logger("retentiond.evaluate")


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    """What one evaluation did."""

    evaluation_id: int
    as_of: dt.date
    policy_version: str
    queued: int
    auto_approved: int
    holds_expired: int
    recompute: RecomputeResult


def json_object(session: Session, **pairs: Any) -> Any:
    """A JSON object built in SQL, on SQLite and PostgreSQL alike."""
    args: list[Any] = []
    for key, value in pairs.items():
        args.extend([literal(key), value])
    if session.get_bind().dialect.name == "postgresql":
        return func.json_build_object(*args)
    return func.json(func.json_object(*args))


def due_and_unheld(session: Session, as_of: dt.date) -> Any:
    """The records that evaluation queues on ``as_of`` (the active holds read in ``session``)."""
    return select(Record).where(
        Record.due_on <= as_of,
        or_(Record.deferred_until.is_(None), Record.deferred_until <= as_of),
        or_(Record.rejected_due_on.is_(None), Record.rejected_due_on != Record.due_on),
        not_(has_open_case()),
        no_hold_covers_record(session, as_of),
    )


def write_stages(session: Session, policy: PolicySet, where: Any, now: dt.datetime) -> None:
    """Give the cases ``where`` selects (a condition on ``Disposal``, e.g. those one
    evaluation queued) their rule's cooling-off and stages, as ``policy`` says for their
    record's facts now. Cases of count rules are left as they are (stage NULL)."""
    cooling = {r.id: r.cooling_off_days for r in policy.rules if r.cooling_off_days}
    if cooling:
        session.execute(
            update(Disposal).where(where, Disposal.rule_id.in_(sorted(cooling)))
            .values(cooling_off_days=case(cooling, value=Disposal.rule_id, else_=0))
            .execution_options(synchronize_session=False))
    staged = {r.id: r for r in policy.rules if r.stages}
    if not staged:
        return
    query = (fact_query().add_columns(Disposal.id, Disposal.rule_id)
             .join(Disposal, Disposal.record_id == Record.id)
             .where(where, Disposal.rule_id.in_(sorted(staged)))
             .order_by(Disposal.id))
    rows: list[dict[str, Any]] = []
    firsts: list[dict[str, Any]] = []
    for row in session.execute(query).yield_per(STAGE_BATCH):
        disposal_id, rule_id = row[-2], row[-1]
        stages = stages_for(staged[rule_id], facts_from_row(row))
        if not stages:
            continue
        rows.extend({"disposal_id": disposal_id, "position": i, "name": s.name,
                     "group_name": s.group} for i, s in enumerate(stages))
        firsts.append({"b_id": disposal_id, "b_group": stages[0].group})
    for start in range(0, len(rows), STAGE_BATCH):
        session.execute(insert(DisposalStage), rows[start:start + STAGE_BATCH])
    if firsts:
        session.execute(
            update(_DISPOSALS).where(_DISPOSALS.c.id == bindparam("b_id"))
            .values(stage=0, stage_group=bindparam("b_group")), firsts)



def _cool_auto_approved(session: Session, evaluation_id: int, now: dt.datetime) -> None:
    """Automatically approved cases of a rule with a cooling-off wait it out like any other
    (``cooling_off`` until now + its days; ``lifecycle/review.py``)."""
    days = session.scalars(
        select(Disposal.cooling_off_days).distinct()
        .where(Disposal.evaluation_id == evaluation_id, Disposal.state == "approved",
               Disposal.cooling_off_days > 0)).all()
    for n in days:
        session.execute(
            update(Disposal)
            .where(Disposal.evaluation_id == evaluation_id, Disposal.state == "approved",
                   Disposal.cooling_off_days == n)
            .values(state="cooling_off", cooling_until=now + dt.timedelta(days=n))
            .execution_options(synchronize_session=False))


def evaluate(ctx: Context, as_of: dt.date) -> EvaluationResult:
    """Recompute what is stale, expire holds that have ended, then queue what is due.

    ``as_of`` may be today or earlier (to catch up a missed night), never later: a case is
    only ever opened for a record that is due now. ``forecast`` answers "what will be due".
    """
    if as_of > ctx.clock.today():
        raise LifecycleError(
            f"--as-of {as_of.isoformat()} is after today ({ctx.clock.today().isoformat()}): "
            "evaluation only queues what is due now; use 'retentiond forecast' to look ahead"
        )
    recompute = recompute_stale(ctx)
    now = ctx.clock.now()
    with write_transaction(ctx.sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            # Two evaluations at once (the nightly job and an officer's command, or two
            # instances) would both see a record without a case and the second would fail on
            # the unique index. Queueing waits its turn instead, then finds nothing new.
            session.execute(select(func.pg_advisory_xact_lock(*QUEUE_LOCK_KEY)))
        expired = expire_holds(ctx, session, as_of)
        run = Evaluation(as_of=as_of, policy_version=ctx.policy.version, actor=ctx.actor,
                         started_at=now, queued=0)
        session.add(run)
        session.flush()
        due = due_and_unheld(session, as_of).subquery()
        session.execute(
            insert(Disposal).from_select(
                ["record_id", "state", "due_on", "action", "rule_id", "policy_version",
                 "approvals_required", "evaluation_id", "attempts", "created_at", "updated_at"],
                select(
                    due.c.id,
                    case((due.c.auto_approve, literal("approved")), else_=literal("pending_review")),
                    due.c.due_on, due.c.due_action, due.c.due_rule, due.c.policy_version,
                    due.c.approvals_required, literal(run.id), literal(0), literal(now),
                    literal(now),
                ),
            )
        )
        write_stages(session, ctx.policy, Disposal.evaluation_id == run.id, now)
        queued_cases = select(Disposal, Record.record_key).join(
            Record, Record.id == Disposal.record_id
        ).where(Disposal.evaluation_id == run.id).subquery()
        columns = ["occurred_at", "kind", "actor", "entity", "entity_id", "reason",
                   "policy_version", "data"]
        audited = session.scalars(
            insert(AuditEvent).from_select(
                columns,
                select(
                    literal(now), literal("DisposalQueued"), literal(ctx.actor),
                    literal("disposal"), cast(queued_cases.c.id, String),
                    literal(f"due on or before {as_of.isoformat()} and not held"),
                    queued_cases.c.policy_version,
                    json_object(session, record=queued_cases.c.record_key,
                                due_on=cast(queued_cases.c.due_on, String),
                                rule=queued_cases.c.rule_id, action=queued_cases.c.action,
                                evaluation=literal(run.id)),
                ),
            ).returning(AuditEvent.id)
        )
        note_inserted(session, audited)
        auto = select(queued_cases).where(queued_cases.c.state == "approved").subquery()
        session.execute(
            insert(Approval).from_select(
                ["disposal_id", "approver", "reason", "approved_at"],
                select(auto.c.id, literal(AUTO_APPROVER),
                       literal("the rule allows automatic approval"), literal(now)),
            )
        )
        audited = session.scalars(
            insert(AuditEvent).from_select(
                columns,
                select(
                    literal(now), literal("DisposalApproved"), literal(AUTO_APPROVER),
                    literal("disposal"), cast(auto.c.id, String),
                    literal("the rule allows automatic approval"), auto.c.policy_version,
                    json_object(session, record=auto.c.record_key, rule=auto.c.rule_id),
                ),
            ).returning(AuditEvent.id)
        )
        note_inserted(session, audited)
        _cool_auto_approved(session, run.id, now)
        counts = dict(
            session.execute(
                select(Disposal.state, func.count())
                .where(Disposal.evaluation_id == run.id).group_by(Disposal.state)
            ).all()
        )
        run.queued = sum(counts.values())
        run.finished_at = ctx.clock.now()
    log.info("evaluation_finished", evaluation_id=run.id, as_of=as_of.isoformat(),
             policy_version=ctx.policy.version, queued=run.queued,
             auto_approved=counts.get("approved", 0), holds_expired=expired,
             recomputed=recompute.recomputed, cases_withdrawn=recompute.withdrawn)
    return EvaluationResult(
        evaluation_id=run.id, as_of=as_of, policy_version=ctx.policy.version,
        queued=run.queued, auto_approved=counts.get("approved", 0), holds_expired=expired,
        recompute=recompute,
    )
