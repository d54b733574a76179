"""``recompute_stale`` after a policy change, set-based (a temporary table of distinct
decisions and ``UPDATE ... FROM`` in windows of ids), on real SQLite and PostgreSQL: every
record must store exactly what ``decide`` gives on its full facts, whatever the facts (missing
ones included), the category, the window size or the path taken."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_PACK, ROOT, TODAY
from int_support import D, at, load_records, seed_controllers
from sqlalchemy import String, literal, select

from retentiond.lifecycle import recompute
from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.recompute import (
    _recompute_query,
    fact_key,
    facts_from_row,
    recompute_stale,
    stored_decision,
)
from retentiond.policy import decide, load_policy_set
from retentiond.policy.engine import TERMINATION_RULE_ID
from retentiond.registry.models import Record

WIDER = ROOT / "policies" / "england-wider.toml"
#: Few distinct dates, so that many records share the facts a rule reads (one decision serves
#: many rows) while differing in others; None is a missing fact.
_DAYS = [None, "1960-02-29", "1990-05-01", "2004-02-29", "2008-08-31", "2010-12-31",
         "2019-08-31"]
_CATEGORIES = ["education.pupil_record", "safeguarding.referral", "child_protection.case",
               "looked_after.case_record", "health.child_record",
               "safeguarding.lado_allegation", "education.attendance_register"]
#: The change: two categories move (one of them with alternatives and conditions), the
#: rest do not.
_CHANGE = (('period = "25y"', 'period = "26y"'), ('period = "8y"', 'period = "9y"'))
_CHANGED = {"education.pupil_record", "health.child_record"}


def _pack(tmp_path: Path, source: Path, *replacements: tuple[str, str]) -> Path:
    text = source.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"changed-{source.name}"
    path.write_text(text)
    return path


def _rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        category = _CATEGORIES[n % len(_CATEGORIES)]
        dob = rng.choice(_DAYS)
        dod = rng.choice([None, None, None, "2012-03-04", "2030-01-01"]) if dob else None
        if dod is not None and dob is not None and dod < dob:
            dod = None
        opened, closed = rng.choice(_DAYS), rng.choice(_DAYS)
        if opened is not None and closed is not None and closed < opened:
            opened, closed = closed, opened
        rows.append({
            "record_id": f"R-{n:04d}", "category": category,
            "controller": rng.choice(["SCH-01", "SCH-02", "LA-01"]),
            "subject_ref": f"S-{n:04d}", "date_of_birth": dob, "date_of_death": dod,
            "opened_on": opened, "closed_on": closed,
            "event_on": rng.choice(_DAYS), "flags": rng.choice(["", "sen", "sen;ehcp"]),
            "agreement": "ISA-T" if n % 5 == 0 else "",
        })
    return rows


def _stored(ctx: Context) -> dict[int, tuple[Any, ...]]:
    with ctx.sessions() as session:
        return {r.id: (r.category, r.due_on, r.due_action, r.due_rule, r.approvals_required,
                       r.auto_approve, r.needs_attention, r.policy_version, r.rules_digest,
                       r.updated_at)
                for r in session.query(Record)}


def _expected(ctx: Context) -> dict[int, tuple[Any, ...]]:
    """What ``decide`` gives each record on its full facts, as stored."""
    with ctx.sessions() as session:
        rows = session.execute(_recompute_query()).all()
    return {row[0]: (row[1], *stored_decision(decide(ctx.policy, facts_from_row(row))),
                     ctx.policy.version, ctx.policy.category_digest(row[1])) for row in rows}


@pytest.fixture
def registry(ctx, tmp_path):
    """Records of seven categories under both shipped packs, a fifth of them provided under
    an agreement that has been terminated."""
    ctx = dataclasses.replace(ctx, policy=load_policy_set([DEFAULT_PACK, WIDER]))
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-T", title="Synthetic agreement", notice="3m", action="return")
    load_records(ctx, tmp_path, _rows(140, seed=6))
    terminate_agreement(ctx, "ISA-T", on=D(2026, 10, 1))
    return ctx


def _check_change(registry: Context, tmp_path: Path) -> None:
    before = _stored(registry)
    later = at(registry, TODAY + dt.timedelta(days=1))
    new = dataclasses.replace(later, policy=load_policy_set([
        _pack(tmp_path, DEFAULT_PACK, _CHANGE[0]), _pack(tmp_path, WIDER, _CHANGE[1])]))
    assert {c for c in _CATEGORIES
            if new.policy.category_digest(c) != registry.policy.category_digest(c)} == _CHANGED
    result = recompute_stale(new)
    after, expected = _stored(new), _expected(new)
    assert {k: v[:-1] for k, v in after.items()} == expected
    moved = [k for k, v in after.items() if v[0] in _CHANGED]
    kept = [k for k, v in after.items() if v[0] not in _CHANGED]
    # The data covers what it should: missing facts, a terminated agreement, both kinds.
    assert any(after[k][6] is not None for k in moved)
    assert any(after[k][3] == TERMINATION_RULE_ID for k in moved)
    assert any(after[k][1] is not None for k in moved)
    # Changed categories were rewritten; the others only relabelled.
    assert all(after[k][-1] == new.clock.now() for k in moved)
    assert all(after[k][:7] == before[k][:7] and after[k][-1] == before[k][-1] for k in kept)
    assert result.recomputed == len(moved)
    assert result.relabelled == len(kept)
    assert result.changed == sum(1 for k in moved if after[k][1] != before[k][1])
    assert result.changed > 0
    # Nothing is left to do.
    again = recompute_stale(new)
    assert (again.recomputed, again.changed, again.relabelled) == (0, 0, 0)


@pytest.mark.parametrize("batch", [5000, 7, 1])
def test_policy_change_stores_what_decide_gives(registry, tmp_path, monkeypatch, batch):
    """Whatever the window size (one window, many, one record each, resized as they go), the
    recomputed categories store ``decide``'s answer and the rest keep theirs."""
    monkeypatch.setattr(recompute, "BATCH", batch)
    _check_change(registry, tmp_path)


def test_category_the_key_cannot_cover_is_recomputed_row_by_row(registry, tmp_path,
                                                                 monkeypatch):
    """A category whose rules test a fact the key does not know is left to the row-by-row
    pass, with the same outcome."""
    real = recompute.facts_read

    def unknown_for_health(policy: Any, category: str) -> tuple[str, ...] | None:
        return None if category == "health.child_record" else real(policy, category)

    monkeypatch.setattr(recompute, "facts_read", unknown_for_health)
    _check_change(registry, tmp_path)


def test_never_decided_records_are_recomputed(registry):
    """Records with no digest (never decided) are decided, in every category."""
    with registry.sessions.begin() as session:
        session.query(Record).update({Record.rules_digest: None, Record.due_on: None,
                                      Record.due_rule: None})
    result = recompute_stale(registry)
    assert result.recomputed == len(_stored(registry))
    assert {k: v[:-1] for k, v in _stored(registry).items()} == _expected(registry)


def test_fact_key_tells_apart_what_differs(ctx):
    """The key of a text fact cannot be confused with a neighbour's: texts carry their
    length, NULL is not a text."""
    with ctx.sessions() as session:
        def key(*values: str | None) -> str:
            return str(session.scalar(select(fact_key([literal(v, String) for v in values]))))

        assert key("a|b", "c") != key("a", "b|c")
        assert key(None, "x") != key("n", "x")
        assert key("", "x") != key(None, "x")
        assert key("1:a", "") != key("1", ":a")


def test_categories_whose_rules_were_removed_need_attention(registry):
    """When a pack is taken out, its categories' records are recomputed to 'no rule covers
    this category' (never due, needing attention) unless their agreement's termination makes
    them due, exactly as ``decide`` says."""
    new = dataclasses.replace(registry, policy=load_policy_set([DEFAULT_PACK]))
    result = recompute_stale(new)
    after, expected = _stored(new), _expected(new)
    assert {k: v[:-1] for k, v in after.items()} == expected
    orphaned = [v for v in after.values() if v[0] not in new.policy.categories]
    assert orphaned and all(v[1] is None and v[6] for v in orphaned
                            if v[3] != TERMINATION_RULE_ID)
    assert any(v[3] == TERMINATION_RULE_ID for v in orphaned)
    assert result.recomputed == len(orphaned)
