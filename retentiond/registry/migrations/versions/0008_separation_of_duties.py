"""separation of duties: one live approval per case and person; API tokens made by their user

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Before the unique index ``uq_approvals_live`` (one live approval per case and person) can be
created, live approvals that repeat a person on the same case (several sessions approving at
once, before this revision) are voided, keeping each person's first, with an audit event
each. A case left ``approved`` by fewer different people than its rule needs goes back to
``pending_review``, audited, so that it is never disposed of on too few approvals.

``api_tokens.issued_by`` records who made a token. It is filled from each token's
``ApiTokenCreated`` event; a live token made by anyone but its own user (an administrator
minting for an approver), or whose maker is unknown, is revoked, audited: such a token let
one person act as another.

The data changes are not undone by a downgrade (the voided approvals and revoked tokens stay
so); the downgrade only drops the index and the column.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ACTOR = "retentiond:upgrade-0008"
LIVE = sa.text("voided_at IS NULL")

_meta = sa.MetaData()
_approvals = sa.Table(
    "approvals", _meta,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("disposal_id", sa.Integer),
    sa.Column("approver", sa.String), sa.Column("voided_at", sa.DateTime(timezone=True)),
)
_disposals = sa.Table(
    "disposals", _meta,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("state", sa.String),
    sa.Column("approvals_required", sa.Integer), sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
_tokens = sa.Table(
    "api_tokens", _meta,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("user_id", sa.Integer),
    sa.Column("name", sa.String), sa.Column("issued_by", sa.String),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)
_users = sa.Table("web_users", _meta, sa.Column("id", sa.Integer, primary_key=True),
                  sa.Column("username", sa.String))
_events = sa.Table(
    "audit_events", _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True)), sa.Column("kind", sa.String),
    sa.Column("actor", sa.String), sa.Column("entity", sa.String),
    sa.Column("entity_id", sa.String), sa.Column("reason", sa.Text),
    sa.Column("policy_version", sa.String), sa.Column("data", sa.JSON),
)

SHORT_OF_PEOPLE = ("approved by fewer different people than its rule needs (one person's "
                   "approvals from several sessions counted more than once): back to review")


def _now(conn: sa.Connection) -> dt.datetime:
    # A migration runs once, outside the lifecycle and its Clock: the time it changed data is
    # the time it ran. SQLite stores naive UTC (models.UtcDateTime).
    now = dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=None) if conn.dialect.name == "sqlite" else now


def upgrade() -> None:
    conn = op.get_bind()
    now = _now(conn)
    events: list[dict[str, Any]] = []
    _void_repeated_approvals(conn, now, events)
    _return_short_cases(conn, now, events)
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index("uq_approvals_live", ["disposal_id", "approver"], unique=True,
                              sqlite_where=LIVE, postgresql_where=LIVE)
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issued_by", sa.String(length=200), nullable=True))
    _revoke_tokens_made_for_others(conn, now, events)
    _audit(conn, now, events)


def _void_repeated_approvals(conn: sa.Connection, now: dt.datetime,
                             events: list[dict[str, Any]]) -> None:
    first = (sa.select(sa.func.min(_approvals.c.id))
             .where(_approvals.c.voided_at.is_(None))
             .group_by(_approvals.c.disposal_id, _approvals.c.approver))
    repeated = conn.execute(
        sa.select(_approvals.c.id, _approvals.c.disposal_id, _approvals.c.approver)
        .where(_approvals.c.voided_at.is_(None), _approvals.c.id.not_in(first))
        .order_by(_approvals.c.id)).all()
    for approval_id, disposal_id, approver in repeated:
        conn.execute(sa.update(_approvals).where(_approvals.c.id == approval_id)
                     .values(voided_at=now))
        events.append({"kind": "ApprovalVoided", "entity": "disposal",
                       "entity_id": str(disposal_id),
                       "reason": "a second live approval by the same person: one person "
                                 "counts once (voided at upgrade)",
                       "data": {"approval_id": approval_id, "approver": approver}})


def _return_short_cases(conn: sa.Connection, now: dt.datetime,
                        events: list[dict[str, Any]]) -> None:
    people = (sa.select(sa.func.count(sa.distinct(_approvals.c.approver)))
              .where(_approvals.c.disposal_id == _disposals.c.id,
                     _approvals.c.voided_at.is_(None))
              .scalar_subquery())
    short = conn.execute(
        sa.select(_disposals.c.id).where(_disposals.c.state == "approved",
                                         people < _disposals.c.approvals_required)
        .order_by(_disposals.c.id)).scalars().all()
    for disposal_id in short:
        conn.execute(sa.update(_disposals)
                     .where(_disposals.c.id == disposal_id, _disposals.c.state == "approved")
                     .values(state="pending_review", reason=SHORT_OF_PEOPLE, updated_at=now))
        events.append({"kind": "DisposalReturnedToReview", "entity": "disposal",
                       "entity_id": str(disposal_id), "reason": SHORT_OF_PEOPLE, "data": {}})


def _revoke_tokens_made_for_others(conn: sa.Connection, now: dt.datetime,
                                   events: list[dict[str, Any]]) -> None:
    makers: dict[int, str] = {}
    for actor, data in conn.execute(
            sa.select(_events.c.actor, _events.c.data)
            .where(_events.c.kind == "ApiTokenCreated").order_by(_events.c.id)):
        token_id = (data or {}).get("token_id")
        if isinstance(token_id, int):
            makers.setdefault(token_id, actor)
    tokens = conn.execute(
        sa.select(_tokens.c.id, _tokens.c.name, _tokens.c.revoked_at, _users.c.username)
        .join(_users, _users.c.id == _tokens.c.user_id).order_by(_tokens.c.id)).all()
    for token_id, name, revoked_at, owner in tokens:
        maker = makers.get(token_id)
        conn.execute(sa.update(_tokens).where(_tokens.c.id == token_id)
                     .values(issued_by=maker))
        if maker == owner or revoked_at is not None:
            continue
        conn.execute(sa.update(_tokens).where(_tokens.c.id == token_id).values(revoked_at=now))
        made = f"made by {maker}" if maker else "made by someone unknown"
        events.append({"kind": "ApiTokenRevoked", "entity": "user", "entity_id": owner,
                       "reason": f"{made}, not by {owner}: a token is made by its own user "
                                 "only (revoked at upgrade)",
                       "data": {"token_id": token_id, "name": name, "issued_by": maker}})


def _audit(conn: sa.Connection, now: dt.datetime, events: list[dict[str, Any]]) -> None:
    """Write the events and seal them into the hash chain, as a lifecycle transaction would."""
    if not events:
        return
    from sqlalchemy.orm import Session

    from retentiond.registry.chain import note_inserted, seal

    ids = [conn.execute(sa.insert(_events).values(
        occurred_at=now, actor=ACTOR, policy_version=None, **ev).returning(_events.c.id)
    ).scalar_one() for ev in events]
    session = Session(bind=conn)
    note_inserted(session, ids)
    seal(session)
    session.flush()


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("issued_by")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index("uq_approvals_live", sqlite_where=LIVE, postgresql_where=LIVE)
