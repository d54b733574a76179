"""Alembic environment: runs against the engine or connection ``registry.db`` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from retentiond.registry.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = config.attributes["engine"]
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            _migrate(conn)
        return
    # SQLite alters a table by copying it and dropping the old one (batch mode); with foreign
    # keys on, dropping a table that other rows refer to (web_users, with sessions and tokens)
    # fails. The pragma cannot change inside a transaction, so it is turned off around it, and
    # the references are checked before the migration commits.
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                _migrate(conn)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left {len(broken)} rows referring to "
                                       f"rows that do not exist (first: {broken[0]})")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
