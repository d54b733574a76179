"""audit hash chain: position, previous hash and hash on every audit event

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Events written before this revision are sealed into the chain here, in id order, so that an
existing registry starts with a whole chain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                      nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_events_seq"), ["seq"])
        batch_op.create_index(
            "ix_audit_events_unsealed", ["id"], unique=False,
            sqlite_where=sa.text("seq IS NULL"), postgresql_where=sa.text("seq IS NULL"),
        )
    _seal_existing()


def _seal_existing() -> None:
    from sqlalchemy.orm import Session

    from retentiond.registry.chain import note_inserted, seal
    from retentiond.registry.models import AuditEvent

    session = Session(bind=op.get_bind())
    ids = session.scalars(sa.select(AuditEvent.id).where(AuditEvent.seq.is_(None))
                          .order_by(AuditEvent.id)).all()
    if ids:
        note_inserted(session, ids)
        seal(session)
    session.flush()


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_unsealed",
                            sqlite_where=sa.text("seq IS NULL"),
                            postgresql_where=sa.text("seq IS NULL"))
        batch_op.drop_constraint(batch_op.f("uq_audit_events_seq"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
