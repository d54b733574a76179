"""saved filters, and holds scoped by one

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 23:00:00

``saved_filters``: the review queue's criteria saved under a unique name, with their owner and
creation time. ``holds.criteria`` and ``holds.filter_id``: a hold scoped by a saved filter
(``filter:<name or id>``) keeps its own copy of the filter's record criteria, and the id of
the filter it came from (no foreign key: deleting the filter leaves the hold as it was).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('saved_filters',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('criteria', sa.JSON(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_saved_filters')),
    sa.UniqueConstraint('name', name=op.f('uq_saved_filters_name'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('criteria', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('filter_id', _ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_column('filter_id')
        batch_op.drop_column('criteria')
    op.drop_table('saved_filters')
