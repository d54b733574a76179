"""sources: which feed states each record, what it last stated, and what went missing

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-04 12:00:00

``records.source`` (the ``[sources.NAME]`` that last stated the record's facts, ``api`` for the
push API, NULL for ``records import``), ``records.facts_digest`` (a digest of the row last
applied: an identical row is not written again) and ``records.gone_at_source_at`` (when a full
extract of its source stopped listing it; the record is kept and shown for review).
``source_runs``: each run of a source, its outcome and counts. ``idempotent_requests``: push
requests by their client's ``Idempotency-Key``, with the answer given.

Existing records get NULL in all three: no source, no digest (their next row is written once,
as before), not gone. Nothing else changes for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('facts_digest', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('gone_at_source_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_records_source', ['source'], unique=False)
        batch_op.create_index('ix_records_gone_at_source', ['gone_at_source_at'], unique=False,
                              sqlite_where=sa.text('gone_at_source_at IS NOT NULL'),
                              postgresql_where=sa.text('gone_at_source_at IS NOT NULL'))
    op.create_table('source_runs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_runs'))
    )
    with op.batch_alter_table('source_runs', schema=None) as batch_op:
        batch_op.create_index('ix_source_runs_source_started', ['source', 'started_at'],
                              unique=False)
    op.create_table('idempotent_requests',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('route', sa.String(length=64), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotent_requests'))
    )
    with op.batch_alter_table('idempotent_requests', schema=None) as batch_op:
        batch_op.create_index('uq_idempotent_requests_user_key', ['username', 'key'],
                              unique=True)


def downgrade() -> None:
    op.drop_table('idempotent_requests')
    op.drop_table('source_runs')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_gone_at_source')
        batch_op.drop_index('ix_records_source')
        batch_op.drop_column('gone_at_source_at')
        batch_op.drop_column('facts_digest')
        batch_op.drop_column('source')
