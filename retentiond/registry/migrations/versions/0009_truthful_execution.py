"""truthful execution: what was sent, what was not found, outcomes, remaining copies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 12:00:00

``disposal_executions`` gains ``action_sent_at`` (the action was sent after the data was seen
present: data absent on a retry is this service's own delete), ``not_found_at`` (not found on
the first attempt: a finding for a person), ``outcome`` and ``outcome_note`` (what the
certificate states) and ``remaining`` (what outlives the delete, and until when).
``record_presence`` keeps whether a record's data was found when last asked.

Existing data keeps its behaviour: a case that may already have sent its delete (executing,
or approved after an attempt) is marked sent, so its retry still counts "already absent" as
success; executed disposals keep no outcome, and certificates state their action's word as
before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('disposal_executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('action_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('not_found_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('outcome_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('remaining', sa.JSON(), nullable=True))
    op.create_table('record_presence',
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('system', sa.String(length=100), nullable=False),
    sa.Column('locator_sha256', sa.String(length=64), nullable=False),
    sa.Column('found', sa.Boolean(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_record_presence_record_id_records')),
    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_record_presence'))
    )
    tried = ("SELECT id FROM disposals WHERE attempts > 0 AND state IN ('executing', "
             "'approved')")
    op.execute(f"UPDATE disposal_executions SET action_sent_at = updated_at "
               f"WHERE disposal_id IN ({tried})")
    op.execute(f"INSERT INTO disposal_executions (disposal_id, action, action_sent_at, updated_at) "
               f"SELECT id, action, updated_at, updated_at FROM disposals WHERE id IN ({tried}) "
               f"AND id NOT IN (SELECT disposal_id FROM disposal_executions)")


def downgrade() -> None:
    op.drop_table('record_presence')
    with op.batch_alter_table('disposal_executions', schema=None) as batch_op:
        batch_op.drop_column('remaining')
        batch_op.drop_column('outcome_note')
        batch_op.drop_column('outcome')
        batch_op.drop_column('not_found_at')
        batch_op.drop_column('action_sent_at')
