"""Disposal states fit the column that stores them."""

from __future__ import annotations

from retentiond.registry.models import DISPOSAL_STATES, OPEN_STATES, Disposal


def test_every_state_fits_the_state_column():
    """No state name is longer than disposals.state (PostgreSQL would refuse it)."""
    assert max(len(s) for s in DISPOSAL_STATES) <= Disposal.__table__.c.state.type.length


def test_open_states_are_states():
    """Every open state is a disposal state."""
    assert set(OPEN_STATES) <= set(DISPOSAL_STATES)
