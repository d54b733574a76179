"""The yardsticks: evaluation written by hand in SQL, and the clean-up between the two runs.

``raw_evaluate`` does the same work as ``retentiond.lifecycle.evaluate.evaluate`` once nothing
is stale: one evaluation row, one ``INSERT ... SELECT`` of every record that is due, not
deferred, not rejected at this due date, without a live or finished case and not covered by
an active hold (resolved by one indexed anti-join per hold scope), then its ``DisposalQueued``
audit events, and the automatic approvals with their events. It is what a DBA would write.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, TextClause, bindparam, text

from retentiond.lifecycle.sql import DONE_STATES
from retentiond.registry.models import OPEN_STATES, UtcDateTime

_CASE_STATES = ", ".join(f"'{s}'" for s in (*OPEN_STATES, *DONE_STATES))

_INSERT_CASES = f"""
INSERT INTO disposals (record_id, state, due_on, action, rule_id, policy_version,
                       approvals_required, evaluation_id, attempts, created_at, updated_at)
SELECT r.id, CASE WHEN r.auto_approve THEN 'approved' ELSE 'pending_review' END,
       r.due_on, r.due_action, r.due_rule, r.policy_version, r.approvals_required,
       :evaluation, 0, :now, :now
FROM records r
JOIN controllers c ON c.id = r.controller_id
LEFT JOIN subjects s ON s.id = r.subject_id
WHERE r.due_on <= :as_of
  AND (r.deferred_until IS NULL OR r.deferred_until <= :as_of)
  AND (r.rejected_due_on IS NULL OR r.rejected_due_on <> r.due_on)
  AND NOT EXISTS (SELECT 1 FROM disposals d
                  WHERE d.record_id = r.id AND d.state IN ({_CASE_STATES}))
  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.scope_kind = 'record'
                  AND h.scope_value = r.record_key {{active}})
  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.scope_kind = 'category'
                  AND h.scope_value = r.category {{active}})
  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.scope_kind = 'subject'
                  AND h.scope_value = s.ref {{active}})
  AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.scope_kind = 'controller'
                  AND h.scope_value = c.code {{active}})
""".replace("{active}", "AND h.lifted_at IS NULL AND (h.until IS NULL OR h.until >= :as_of)")

_INSERT_EVENTS = """
INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, reason, policy_version,
                          data)
SELECT :now, 'DisposalQueued', :actor, 'disposal', CAST(d.id AS VARCHAR), :reason,
       d.policy_version, {json}
FROM disposals d JOIN records r ON r.id = d.record_id
WHERE d.evaluation_id = :evaluation
"""

_INSERT_APPROVALS = """
INSERT INTO approvals (disposal_id, approver, reason, approved_at)
SELECT d.id, 'retentiond:auto-approval', 'the rule allows automatic approval', :now
FROM disposals d WHERE d.evaluation_id = :evaluation AND d.state = 'approved'
"""

_INSERT_APPROVAL_EVENTS = """
INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, reason, policy_version,
                          data)
SELECT :now, 'DisposalApproved', 'retentiond:auto-approval', 'disposal', CAST(d.id AS VARCHAR),
       'the rule allows automatic approval', d.policy_version, {json}
FROM disposals d JOIN records r ON r.id = d.record_id
WHERE d.evaluation_id = :evaluation AND d.state = 'approved'
"""


def _json(dialect: str, pairs: dict[str, str]) -> str:
    args = ", ".join(f"'{k}', {v}" for k, v in pairs.items())
    return f"json_build_object({args})" if dialect == "postgresql" else f"json_object({args})"


def _now_param(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UtcDateTime()))


def raw_evaluate(conn: Connection, *, as_of: dt.date, now: dt.datetime, actor: str,
                 policy_version: str) -> tuple[int, int]:
    """Queue what is due and unheld in one transaction (the caller's); return the new
    evaluation's id and how many cases it queued."""
    dialect = conn.dialect.name
    evaluation = conn.execute(
        _now_param("INSERT INTO evaluations (as_of, policy_version, actor, started_at, queued) "
                   "VALUES (:as_of, :version, :actor, :now, 0) RETURNING id"),
        {"as_of": as_of, "version": policy_version, "actor": actor, "now": now},
    ).scalar_one()
    params = {"as_of": as_of, "now": now, "evaluation": evaluation, "actor": actor,
              "reason": f"due on or before {as_of.isoformat()} and not held"}
    queued = conn.execute(_now_param(_INSERT_CASES), params).rowcount
    due_on = "CAST(d.due_on AS VARCHAR)"
    conn.execute(_now_param(_INSERT_EVENTS.format(json=_json(dialect, {
        "record": "r.record_key", "due_on": due_on, "rule": "d.rule_id", "action": "d.action",
        "evaluation": ":evaluation"}))), params)
    conn.execute(_now_param(_INSERT_APPROVALS), params)
    conn.execute(_now_param(_INSERT_APPROVAL_EVENTS.format(json=_json(dialect, {
        "record": "r.record_key", "rule": "d.rule_id"}))), params)
    conn.execute(text("UPDATE evaluations SET queued = :n, finished_at = started_at "
                      "WHERE id = :evaluation"), {"n": queued, "evaluation": evaluation})
    return int(evaluation), int(queued)


def queued_fingerprint(conn: Connection, evaluation: int) -> tuple[int, int]:
    """How many cases an evaluation queued and the sum of their record ids: equal
    fingerprints mean both evaluations chose the same records."""
    count, total = conn.execute(
        text("SELECT COUNT(*), COALESCE(SUM(record_id), 0) FROM disposals "
             "WHERE evaluation_id = :e"), {"e": evaluation}).one()
    return int(count), int(total)


def forget_evaluation(conn: Connection, evaluation: int) -> None:
    """Delete the cases an evaluation queued, their approvals and their audit events, so that
    the next evaluation starts from the same state."""
    if conn.dialect.name == "postgresql":
        # The statistics are from before the evaluation: with them PostgreSQL takes the
        # evaluation's audit events for a handful and joins them to its cases by a nested
        # loop, which at 10,000,000 records (100,000 cases) ran for over half an hour.
        conn.execute(text("ANALYZE audit_events, disposals, approvals"))
    ids = "SELECT CAST(id AS VARCHAR) FROM disposals WHERE evaluation_id = :e"
    conn.execute(text("DELETE FROM audit_events WHERE entity = 'disposal' AND kind IN "
                      f"('DisposalQueued', 'DisposalApproved') AND entity_id IN ({ids})"),
                 {"e": evaluation})
    conn.execute(text("DELETE FROM approvals WHERE disposal_id IN "
                      "(SELECT id FROM disposals WHERE evaluation_id = :e)"), {"e": evaluation})
    conn.execute(text("DELETE FROM disposals WHERE evaluation_id = :e"), {"e": evaluation})
