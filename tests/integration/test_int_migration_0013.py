"""Migration 0013 keeps existing data's behaviour: every case becomes a count case (stage
NULL) with no cooling-off, its approvals keep counting, nobody is scoped; and one live case
per record still holds for the new states."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from retentiond.registry.db import _alembic_config, make_engine

T = dt.datetime(2026, 11, 1, 12, 0)


def test_existing_cases_are_count_cases_without_cooling_off(database_url):
    engine = make_engine(database_url)
    try:
        command.downgrade(_alembic_config(engine), "0012")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO controllers (id, code, name, email, created_at, "
                              "updated_at) VALUES (1, 'SCH-01', 'School', 'a@b.example', :t, :t)"),
                         {"t": T})
            for n in (1, 2):
                conn.execute(text("INSERT INTO records (id, record_key, category, controller_id, "
                                  "flags, approvals_required, auto_approve, created_at, updated_at)"
                                  " VALUES (:n, :k, 'education.pupil_record', 1, '', 2, false, "
                                  ":t, :t)"), {"n": n, "k": f"R{n}", "t": T})
                conn.execute(text("INSERT INTO disposals (id, record_id, state, due_on, action, "
                                  "rule_id, policy_version, approvals_required, attempts, "
                                  "created_at, updated_at) VALUES (:n, :n, :s, '2025-01-01', "
                                  "'delete', 'r', 'v', 2, 0, :t, :t)"),
                             {"n": n, "s": "pending_review" if n == 1 else "approved", "t": T})
            conn.execute(text("INSERT INTO approvals (disposal_id, approver, reason, approved_at)"
                              " VALUES (1, 'approver.a', 'ok', :t)"), {"t": T})
        command.upgrade(_alembic_config(engine), "head")
        with engine.connect() as conn:
            cases = conn.execute(text(
                "SELECT id, state, stage, stage_group, cooling_off_days, cooling_until, "
                "approvals_required FROM disposals ORDER BY id")).all()
            approvals = conn.execute(text(
                "SELECT disposal_id, approver, stage, voided_at FROM approvals")).all()
            scopes = conn.execute(text("SELECT count(*) FROM review_scopes")).scalar_one()
        assert [tuple(c) for c in cases] == [
            (1, "pending_review", None, None, 0, None, 2),
            (2, "approved", None, None, 0, None, 2)]
        assert [tuple(a) for a in approvals] == [(1, "approver.a", None, None)]
        assert scopes == 0
        # A record has one live case, whichever of the new states it is in.
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO disposals (record_id, state, due_on, action, "
                              "rule_id, policy_version, approvals_required, attempts, "
                              "cooling_off_days, created_at, updated_at) VALUES (1, "
                              "'exception', '2025-01-01', 'delete', 'r', 'v', 2, 0, 0, :t, :t)"),
                         {"t": T})
    finally:
        engine.dispose()
