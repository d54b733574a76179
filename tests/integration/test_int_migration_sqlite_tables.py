"""Migrations that rebuild a table on SQLite (batch mode) keep the rows that refer to it."""

from __future__ import annotations

from alembic import command
from sqlalchemy import func, select

from retentiond.registry import models as m
from retentiond.registry.db import _alembic_config, current_revision, head_revision, upgrade
from retentiond.web.accounts import add_user
from retentiond.web.sessions import create_token


def test_rebuilding_web_users_keeps_its_tokens(ctx):
    """Down to 0009 and up again through 0010, which rebuilds ``web_users`` on SQLite: a user
    with an API token survives, token and all (with foreign keys on, dropping the old table
    failed while a token referred to it)."""
    engine = ctx.sessions.kw["bind"]
    add_user(ctx, username="approver.a", roles="approver", password=None)
    from int_support import as_actor

    create_token(as_actor(ctx, "approver.a"), "approver.a", name="reports")
    command.downgrade(_alembic_config(engine), "0009")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(m.ApiToken)) == 1
        assert session.scalar(select(m.WebUser.username_key)) == "approver.a"
