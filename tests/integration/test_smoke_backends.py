"""The fixtures give a migrated registry on both backends."""

from __future__ import annotations

from sqlalchemy import select

from retentiond.registry.db import current_revision, head_revision
from retentiond.registry.models import Record


def test_fresh_registry_is_migrated_and_empty(ctx):
    """A fresh registry is at the head revision and holds no records."""
    engine = ctx.sessions.kw["bind"]
    assert current_revision(engine) == head_revision()
    with ctx.sessions() as session:
        assert session.scalars(select(Record)).all() == []
