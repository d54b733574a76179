"""Alembic migrations against real SQLite and PostgreSQL: ``upgrade head`` gives exactly the
models' schema, and the whole chain downgrades to base and upgrades again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from retentiond.registry.db import (
    _alembic_config,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from retentiond.registry.models import Base


def _differences(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_head_matches_the_models(database_url):
    """A database migrated to head has exactly the tables, columns, types and indexes of the
    models: autogenerate finds nothing to do."""
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade(database_url):
    """Every migration downgrades cleanly to an empty schema, and upgrading again gives the
    models' schema."""
    engine = make_engine(database_url)
    try:
        command.downgrade(_alembic_config(engine), "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(database_url):
    """Upgrading a database already at head does nothing and succeeds."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
