"""Explain one record's decision: every rule considered, the facts it used, what holds it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, select

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.holds import covered_by
from retentiond.lifecycle.presence import findings
from retentiond.lifecycle.recompute import fact_query, facts_from_row
from retentiond.lifecycle.sql import hold_is_active
from retentiond.lifecycle.stages import stages_of
from retentiond.policy import decide_safely
from retentiond.policy.model import TRIGGERS
from retentiond.registry.models import (
    Agreement,
    Approval,
    AuditEvent,
    Controller,
    Disposal,
    GroupMember,
    Hold,
    Record,
    Subject,
)


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def explain(ctx: Context, record_key: str, *, as_of: dt.date) -> dict[str, Any]:
    """The explanation as a JSON-ready dict; its keys are documented in ``docs/cli.md``."""
    with ctx.sessions() as session:
        record = session.scalar(select(Record).where(Record.record_key == record_key))
        if record is None:
            raise LifecycleError(f"no record {record_key!r}")
        row = session.execute(fact_query().where(Record.id == record.id)).one()
        facts = facts_from_row(row)
        decision = decide_safely(ctx.policy, facts)
        controller = session.get_one(Controller, record.controller_id)
        agreement = session.get(Agreement, record.agreement_id) if record.agreement_id else None
        subject = session.get(Subject, record.subject_id) if record.subject_id else None
        holds = [
            h for h in session.scalars(select(Hold).where(hold_is_active(as_of)))
            if session.scalar(select(Record.id).where(
                and_(Record.id == record.id, covered_by(h.scope_kind, h.scope_value, h.criteria))))
        ]
        cases = list(session.scalars(
            select(Disposal).where(Disposal.record_id == record.id).order_by(Disposal.id)
        ))
        live = next((c for c in reversed(cases) if c.state not in
                     ("withdrawn", "deferred", "rejected")), None)
        approvers = list(session.scalars(
            select(Approval.approver).where(Approval.disposal_id == live.id,
                                            Approval.voided_at.is_(None))
            .order_by(Approval.id))) if live is not None else []
        history = list(session.scalars(
            select(AuditEvent).where(
                AuditEvent.entity == "disposal",
                AuditEvent.entity_id.in_([str(c.id) for c in cases]),
            ).order_by(AuditEvent.id)
        )) if cases else []
        finding = findings(session, [record.id]).get(record.id)
        stages = stages_of(session, [live.id]).get(live.id, []) if live is not None else []
        waiting = next((st for st in stages if live is not None
                        and live.state == "pending_review" and st.position == live.stage), None)
        # Who may act on the stage it waits for: its group's members who have not approved.
        may_act = [u for u in session.scalars(
            select(GroupMember.username).where(GroupMember.group_name == waiting.group)
            .order_by(GroupMember.username)) if u not in approvers] if waiting else []
    if holds:
        state = "held"
    elif live is not None:
        state = live.state
    elif decision.due_on is not None and decision.due_on <= as_of:
        state = "due"
    else:
        state = "retained"
    doc: dict[str, Any] = {
        "record_id": record.record_key,
        "category": record.category,
        "controller": controller.code,
        "agreement": agreement.code if agreement else None,
        "system": record.system,
        "locator": record.locator,
        # Whether the holding system had the data when last asked (None: not asked).
        "holding_check": None if finding is None else {
            "system": finding.system, "found": finding.found,
            "checked_at": finding.checked_at.isoformat()},
        "source": record.source,
        "gone_at_source_at": (record.gone_at_source_at.isoformat()
                              if record.gone_at_source_at else None),
        "as_of": as_of.isoformat(),
        "policy_version": decision.policy_version,
        "stored_policy_version": record.policy_version,
        "facts": {
            "subject_ref": subject.ref if subject else None,
            **{t: _iso(getattr(facts, t)) for t in TRIGGERS},
            "flags": sorted(facts.flags),
            "terminated_on": _iso(facts.terminated_on),
        },
        "rules": [
            {
                "rule": o.rule_id, "citation": o.citation, "status": o.status,
                "applied": o.status == "applies", "reason": o.reason,
                "alternative": o.alternative, "trigger": o.trigger,
                "trigger_value": _iso(o.trigger_value), "period": o.period,
                "due_on": _iso(o.due_on),
            }
            for o in decision.outcomes
        ],
        "due_on": _iso(decision.due_on),
        "is_due": decision.is_due(as_of),
        "action": decision.action,
        "rule": decision.rule_id,
        "citation": decision.citation,
        "approvals_required": decision.approvals_required,
        "auto_approve": decision.auto_approve,
        "needs_attention": decision.needs_attention,
        "deferred_until": _iso(record.deferred_until),
        "holds": [
            {"id": h.id, "scope": f"{h.scope_kind}:{h.scope_value}", "type": h.hold_type,
             "reason": h.reason, "until": _iso(h.until)}
            for h in holds
        ],
        "state": state,
        "disposal": None if live is None else {
            "id": live.id, "state": live.state, "due_on": live.due_on.isoformat(),
            "action": live.action, "rule": live.rule_id, "policy_version": live.policy_version,
            "approvals_required": live.approvals_required, "approved_by": approvers,
            "attempts": live.attempts,
            "last_error": live.last_error if live.state == "failed" else None,
        },
        "history": [
            {"at": e.occurred_at.isoformat(), "event": e.kind, "actor": e.actor,
             "disposal": int(e.entity_id), "reason": e.reason}
            for e in history
        ],
    }
    if live is not None and (stages or live.cooling_off_days):
        # Staged or cooling-off cases only: a count case's explanation is as it was.
        doc["disposal"] |= {
            "stage": live.stage,
            "stages": [{"position": st.position, "name": st.name, "group": st.group}
                       for st in stages],
            "stage_words": (f"Stage {waiting.position + 1} of {len(stages)}: {waiting.name} "
                            f"(group {waiting.group})") if waiting else None,
            "may_act": may_act,
            "cooling_off_days": live.cooling_off_days,
            "cooling_until": live.cooling_until.isoformat() if live.cooling_until else None,
        }
    return doc


def explain_text(doc: dict[str, Any]) -> str:
    """The explanation in plain English, for people."""
    lines = [f"Record {doc['record_id']} ({doc['category']}, provided by {doc['controller']})"]
    if doc.get("gone_at_source_at"):
        lines.append(f"  GONE AT SOURCE: source {doc['source']} stopped listing it on "
                     f"{doc['gone_at_source_at'][:10]}; review it (disposed of elsewhere, or "
                     "mislaid?)")
    if doc["due_on"]:
        verb = "was due" if doc["is_due"] else "is due"
        lines.append(f"  {verb} on {doc['due_on']}: {doc['action']} under rule {doc['rule']}")
        lines.append(f"  citing {doc['citation']}")
        if doc["approvals_required"] > 1:
            lines.append(f"  needs {doc['approvals_required']} different approvers")
    else:
        lines.append(f"  is never due as things stand: {doc['needs_attention']}")
    lines.append(f"  state on {doc['as_of']}: {doc['state']}")
    if doc["disposal"] and doc["disposal"]["last_error"]:
        lines.append(f"  case {doc['disposal']['id']} failed: {doc['disposal']['last_error']}")
    lines.append("Rules considered:")
    for r in doc["rules"]:
        due = f" -> {r['due_on']}" if r["due_on"] else ""
        trig = f" ({r['trigger']} = {r['trigger_value']})" if r["trigger_value"] else ""
        lines.append(f"  - {r['rule']}: {r['status']}: {r['reason']}{trig}{due}")
    if doc["holds"]:
        lines.append("Holds:")
        lines.extend(f"  - hold {h['id']} ({h['type']}, {h['scope']}): {h['reason']}"
                     for h in doc["holds"])
    else:
        lines.append("Holds: none")
    if doc["history"]:
        lines.append("History:")
        lines.extend(f"  - {e['at']} {e['event']} by {e['actor']}"
                     + (f": {e['reason']}" if e["reason"] else "") for e in doc["history"])
    lines.append(f"Policy version {doc['policy_version']}")
    return "\n".join(lines)
