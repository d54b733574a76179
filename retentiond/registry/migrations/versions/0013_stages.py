"""stages: ordered review stages, review groups and scopes, exceptions, cooling-off

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 16:15:00

``review_groups`` and ``group_members``: named groups of reviewers (a stage names one).
``review_scopes``: the controllers and categories a group or a user may review (no rows:
unscoped). ``disposal_stages``: a staged case's ordered stages, written when it is queued.
``disposals.stage`` / ``stage_group``: the stage a staged case waits for (NULL for a count
rule); ``disposals.cooling_off_days`` (snapshot from the rule, default 0) and
``cooling_until``; ``approvals.stage``: the stage an approval satisfied. The states
``cooling_off`` and ``exception`` join the open states of the one-live-case-per-record index.

Existing data migrates with no change in behaviour: every case gets stage NULL (a count rule,
``approvals_required`` as before), cooling_off_days 0, no groups and no scopes (everyone
unscoped, as before).

The downgrade moves any ``cooling_off`` or ``exception`` case back to ``pending_review`` (the
older schema has no such states; review is the safe place for them), then drops what this
revision added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

_OLD_OPEN = ("state IN ('pending_review', 'held', 'approved', 'executing', "
             "'pending_confirmation', 'failed')")
_NEW_OPEN = ("state IN ('pending_review', 'held', 'approved', 'executing', "
             "'pending_confirmation', 'failed', 'cooling_off', 'exception')")


def upgrade() -> None:
    op.create_table('review_groups',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_review_groups'))
    )
    op.create_table('group_members',
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['group_name'], ['review_groups.name'],
                            name=op.f('fk_group_members_group_name_review_groups')),
    sa.PrimaryKeyConstraint('group_name', 'username', name=op.f('pk_group_members'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index('ix_group_members_username', ['username'], unique=False)
    op.create_table('review_scopes',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('principal_kind', sa.String(length=10), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('controller', sa.String(length=64), nullable=True),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_scopes'))
    )
    with op.batch_alter_table('review_scopes', schema=None) as batch_op:
        batch_op.create_index('ix_review_scopes_principal', ['principal_kind', 'principal'],
                              unique=False)
    op.create_table('disposal_stages',
    sa.Column('disposal_id', _ID, nullable=False),
    sa.Column('position', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['disposal_id'], ['disposals.id'],
                            name=op.f('fk_disposal_stages_disposal_id_disposals')),
    sa.PrimaryKeyConstraint('disposal_id', 'position', name=op.f('pk_disposal_stages'))
    )
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stage_group', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('cooling_off_days', sa.Integer(),
                                      server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('cooling_until', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.drop_index('uq_disposals_open_record', sqlite_where=sa.text(_OLD_OPEN),
                            postgresql_where=sa.text(_OLD_OPEN))
        batch_op.create_index('uq_disposals_open_record', ['record_id'], unique=True,
                              sqlite_where=sa.text(_NEW_OPEN),
                              postgresql_where=sa.text(_NEW_OPEN))
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.Integer(), nullable=True))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.text(
        "UPDATE disposals SET state = 'pending_review' "
        "WHERE state IN ('cooling_off', 'exception')"))
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_column('stage')
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.drop_index('uq_disposals_open_record', sqlite_where=sa.text(_NEW_OPEN),
                            postgresql_where=sa.text(_NEW_OPEN))
        batch_op.create_index('uq_disposals_open_record', ['record_id'], unique=True,
                              sqlite_where=sa.text(_OLD_OPEN),
                              postgresql_where=sa.text(_OLD_OPEN))
        batch_op.drop_column('cooling_until')
        batch_op.drop_column('cooling_off_days')
        batch_op.drop_column('stage_group')
        batch_op.drop_column('stage')
    op.drop_table('disposal_stages')
    op.drop_table('review_scopes')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_group_members_username')
    op.drop_table('group_members')
    op.drop_table('review_groups')
