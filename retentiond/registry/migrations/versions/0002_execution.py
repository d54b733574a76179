"""execution: backoff, manual confirmation, how each disposal was carried out

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:00:00

Adds ``disposals.next_attempt_at`` (retry backoff), the ``pending_confirmation`` state to the
open states of the one-live-case-per-record index (a manual task awaits an IG officer's
confirmation), and ``disposal_executions`` (system, connector, verification, return package
SHA-256, evidence of destruction).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_OLD_OPEN = "state IN ('pending_review', 'held', 'approved', 'executing', 'failed')"
_NEW_OPEN = ("state IN ('pending_review', 'held', 'approved', 'executing', "
             "'pending_confirmation', 'failed')")


def upgrade() -> None:
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index('uq_disposals_open_record', sqlite_where=sa.text(_OLD_OPEN),
                            postgresql_where=sa.text(_OLD_OPEN))
        batch_op.create_index('uq_disposals_open_record', ['record_id'], unique=True,
                              sqlite_where=sa.text(_NEW_OPEN), postgresql_where=sa.text(_NEW_OPEN))

    op.create_table('disposal_executions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('disposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('system', sa.String(length=100), nullable=True),
    sa.Column('connector', sa.String(length=100), nullable=True),
    sa.Column('connector_kind', sa.String(length=50), nullable=True),
    sa.Column('method', sa.Text(), nullable=True),
    sa.Column('verification', sa.Text(), nullable=True),
    sa.Column('package_name', sa.String(length=300), nullable=True),
    sa.Column('package_sha256', sa.String(length=64), nullable=True),
    sa.Column('package_delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('task_created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('destroyed_by', sa.String(length=200), nullable=True),
    sa.Column('destroyed_on', sa.Date(), nullable=True),
    sa.Column('destruction_method', sa.Text(), nullable=True),
    sa.Column('certificate_no', sa.String(length=200), nullable=True),
    sa.Column('confirmed_by', sa.String(length=200), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('executed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disposal_id'], ['disposals.id'], name=op.f('fk_disposal_executions_disposal_id_disposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disposal_executions')),
    sa.UniqueConstraint('disposal_id', name=op.f('uq_disposal_executions_disposal_id'))
    )


def downgrade() -> None:
    op.drop_table('disposal_executions')
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.drop_index('uq_disposals_open_record', sqlite_where=sa.text(_NEW_OPEN),
                            postgresql_where=sa.text(_NEW_OPEN))
        batch_op.create_index('uq_disposals_open_record', ['record_id'], unique=True,
                              sqlite_where=sa.text(_OLD_OPEN), postgresql_where=sa.text(_OLD_OPEN))
        batch_op.drop_column('next_attempt_at')
