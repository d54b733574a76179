"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:59:11.193203
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('agreements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('notice_months', sa.Integer(), nullable=False),
    sa.Column('termination_action', sa.String(length=20), nullable=False),
    sa.Column('terminated_on', sa.Date(), nullable=True),
    sa.Column('disposal_due_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agreements')),
    sa.UniqueConstraint('code', name=op.f('uq_agreements_code'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('policy_version', sa.String(length=32), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_entity', ['entity', 'entity_id'], unique=False)
        batch_op.create_index('ix_audit_events_occurred_at', ['occurred_at'], unique=False)

    op.create_table('controllers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('webhook_url', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_controllers')),
    sa.UniqueConstraint('code', name=op.f('uq_controllers_code'))
    )
    op.create_table('evaluations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('policy_version', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    op.create_table('holds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('scope_kind', sa.String(length=20), nullable=False),
    sa.Column('scope_value', sa.String(length=200), nullable=False),
    sa.Column('hold_type', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_by', sa.String(length=200), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.Date(), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds'))
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_scope', ['scope_kind', 'scope_value'], unique=False)

    op.create_table('imports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=1000), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    op.create_table('policy_versions',
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('packs', sa.JSON(), nullable=False),
    sa.Column('first_used_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_policy_versions'))
    )
    op.create_table('subjects',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ref', sa.String(length=128), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=True),
    sa.Column('date_of_death', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subjects')),
    sa.UniqueConstraint('ref', name=op.f('uq_subjects_ref'))
    )
    op.create_table('records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_key', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('controller_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('agreement_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('subject_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('system', sa.String(length=100), nullable=True),
    sa.Column('locator', sa.String(length=2000), nullable=True),
    sa.Column('opened_on', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('event_on', sa.Date(), nullable=True),
    sa.Column('flags', sa.String(length=1000), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('due_action', sa.String(length=20), nullable=True),
    sa.Column('due_rule', sa.String(length=200), nullable=True),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('auto_approve', sa.Boolean(), nullable=False),
    sa.Column('needs_attention', sa.Text(), nullable=True),
    sa.Column('policy_version', sa.String(length=32), nullable=True),
    sa.Column('rules_digest', sa.String(length=32), nullable=True),
    sa.Column('deferred_until', sa.Date(), nullable=True),
    sa.Column('rejected_due_on', sa.Date(), nullable=True),
    sa.Column('last_import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agreement_id'], ['agreements.id'], name=op.f('fk_records_agreement_id_agreements')),
    sa.ForeignKeyConstraint(['controller_id'], ['controllers.id'], name=op.f('fk_records_controller_id_controllers')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_records_subject_id_subjects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records')),
    sa.UniqueConstraint('record_key', name=op.f('uq_records_record_key'))
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_agreement_id', ['agreement_id'], unique=False)
        batch_op.create_index('ix_records_category_digest', ['category', 'rules_digest'], unique=False)
        batch_op.create_index('ix_records_controller_id', ['controller_id'], unique=False)
        batch_op.create_index('ix_records_due_on', ['due_on'], unique=False)
        batch_op.create_index('ix_records_subject_id', ['subject_id'], unique=False)

    op.create_table('disposals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('rule_id', sa.String(length=200), nullable=False),
    sa.Column('policy_version', sa.String(length=32), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name=op.f('fk_disposals_evaluation_id_evaluations')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_disposals_record_id_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disposals'))
    )
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.create_index('ix_disposals_evaluation_id', ['evaluation_id'], unique=False)
        batch_op.create_index('ix_disposals_record_id', ['record_id'], unique=False)
        batch_op.create_index('ix_disposals_state', ['state', 'id'], unique=False)
        batch_op.create_index('uq_disposals_open_record', ['record_id'], unique=True, sqlite_where=sa.text("state IN ('pending_review', 'held', 'approved', 'executing', 'failed')"), postgresql_where=sa.text("state IN ('pending_review', 'held', 'approved', 'executing', 'failed')"))

    op.create_table('approvals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('disposal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['disposal_id'], ['disposals.id'], name=op.f('fk_approvals_disposal_id_disposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals'))
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index('ix_approvals_disposal_id', ['disposal_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index('ix_approvals_disposal_id')

    op.drop_table('approvals')
    with op.batch_alter_table('disposals', schema=None) as batch_op:
        batch_op.drop_index('uq_disposals_open_record', sqlite_where=sa.text("state IN ('pending_review', 'held', 'approved', 'executing', 'failed')"), postgresql_where=sa.text("state IN ('pending_review', 'held', 'approved', 'executing', 'failed')"))
        batch_op.drop_index('ix_disposals_state')
        batch_op.drop_index('ix_disposals_record_id')
        batch_op.drop_index('ix_disposals_evaluation_id')

    op.drop_table('disposals')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_subject_id')
        batch_op.drop_index('ix_records_due_on')
        batch_op.drop_index('ix_records_controller_id')
        batch_op.drop_index('ix_records_category_digest')
        batch_op.drop_index('ix_records_agreement_id')

    op.drop_table('records')
    op.drop_table('subjects')
    op.drop_table('policy_versions')
    op.drop_table('imports')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_scope')

    op.drop_table('holds')
    op.drop_table('evaluations')
    op.drop_table('controllers')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_occurred_at')
        batch_op.drop_index('ix_audit_events_entity')

    op.drop_table('audit_events')
    op.drop_table('agreements')

