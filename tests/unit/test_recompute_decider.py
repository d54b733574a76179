"""Recompute remembers decisions by the facts a category's rules read: it must never answer
differently from ``decide`` on the full facts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.lifecycle.recompute import _Decider, facts_from_row, facts_read, stored_decision
from retentiond.policy import decide, load_policy_set

REPO = Path(__file__).resolve().parents[2]
PACKS = {
    "isa-default": [REPO / "policies" / "isa-default.toml"],
    "both": [REPO / "policies" / "isa-default.toml", REPO / "policies" / "england-wider.toml"],
}

# Few distinct values, so that many rows share the facts a rule reads and differ in others:
# the cache is hit, and a wrong key would show.
_days = st.sampled_from([None, dt.date(1960, 2, 29), dt.date(1990, 5, 1), dt.date(2004, 2, 29),
                         dt.date(2010, 12, 31), dt.date(2019, 8, 31)])
_flags = st.sampled_from(["", "sen", "ehcp", "sen;ehcp", "lac"])
_termination = st.sampled_from([(None, None), (dt.date(2026, 2, 1), "return"),
                                (dt.date(2026, 2, 1), "delete")])


def _rows(categories: list[str]) -> st.SearchStrategy[tuple[object, ...]]:
    return st.builds(
        lambda rid, cat, opened, closed, event, flags, dob, dod, term: (
            rid, cat, opened, closed, event, flags, dob, dod, term[0], term[1], None),
        st.integers(1, 10**6), st.sampled_from(categories), _days, _days, _days, _flags, _days,
        _days, _termination)


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_every_category_of_the_shipped_packs_has_a_known_key(pack):
    """Every condition in the shipped packs is one the key knows, so the cache is used."""
    policy = load_policy_set(PACKS[pack])
    for category in policy.categories:
        read = facts_read(policy, category)
        assert read is not None and "category" in read and "terminated_on" in read


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_remembered_decisions_equal_fresh_ones(pack):
    """Decisions through the cache equal ``decide`` on the full facts, row after row."""
    policy = load_policy_set(PACKS[pack])

    @settings(max_examples=60, deadline=None)
    @given(st.lists(_rows(sorted(policy.categories)), min_size=1, max_size=60))
    def check(rows):
        decider = _Decider(policy)
        for row in rows:
            assert decider(row) == stored_decision(decide(policy, facts_from_row(row)))

    check()
