"""Migration 0009 keeps existing data's behaviour: a case that may already have sent its
delete (executing, or approved again after an attempt) is marked sent, so its retry still
counts data already absent as its own delete; a case never attempted is not."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import text

from retentiond.registry.db import _alembic_config, make_engine

T = dt.datetime(2026, 11, 1, 12, 0)


def test_cases_in_flight_are_marked_sent(database_url):
    """Executing and re-approved cases with attempts are marked sent (a row made where none
    was); a fresh approved case and a pending one are not; nothing else changes."""
    engine = make_engine(database_url)
    try:
        command.downgrade(_alembic_config(engine), "0008")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO controllers (id, code, name, email, created_at, "
                              "updated_at) VALUES (1, 'SCH-01', 'School', 'a@b.example', :t, :t)"),
                         {"t": T})
            for n in range(1, 5):
                conn.execute(text("INSERT INTO records (id, record_key, category, controller_id, "
                                  "flags, approvals_required, auto_approve, created_at, updated_at)"
                                  " VALUES (:n, :k, 'education.pupil_record', 1, '', 1, false, "
                                  ":t, :t)"), {"n": n, "k": f"R{n}", "t": T})
            for n, state, attempts in ((1, "executing", 1), (2, "approved", 2),
                                       (3, "approved", 0), (4, "pending_review", 0)):
                conn.execute(text("INSERT INTO disposals (id, record_id, state, due_on, action, "
                                  "rule_id, policy_version, approvals_required, attempts, "
                                  "created_at, updated_at) VALUES (:n, :n, :s, '2025-01-01', "
                                  "'delete', 'r', 'v', 1, :a, :t, :t)"),
                             {"n": n, "s": state, "a": attempts, "t": T})
            conn.execute(text("INSERT INTO disposal_executions (disposal_id, action, updated_at) "
                              "VALUES (1, 'delete', :t)"), {"t": T})
        command.upgrade(_alembic_config(engine), "head")
        with engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT disposal_id, action_sent_at FROM disposal_executions")).all())
            outcomes = conn.execute(text("SELECT outcome FROM disposal_executions")).scalars().all()
        assert set(rows) == {1, 2}
        assert all(v is not None for v in rows.values())
        assert outcomes == [None, None]
    finally:
        engine.dispose()
