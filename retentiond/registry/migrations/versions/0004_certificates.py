"""certificates, notification outbox, acknowledgements, advance notices

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:00:00

Adds ``certificates`` (signed disposal certificates, chained per controller) and
``certificate_items``; ``notifications`` (the transactional outbox); ``acknowledgements``
(a controller's acknowledgement or dispute); ``controller_settings`` (advance notice, channels);
``advance_notices`` and ``advance_notice_items`` (what was announced, never announced twice).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('certificates',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('controller_id', _ID, nullable=False),
    sa.Column('batch', sa.String(length=100), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('previous_sha256', sa.String(length=64), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('audit_head', sa.String(length=128), nullable=True),
    sa.Column('key_id', sa.String(length=200), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_by', sa.String(length=200), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['controller_id'], ['controllers.id'], name=op.f('fk_certificates_controller_id_controllers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('serial', name=op.f('uq_certificates_serial'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('uq_certificates_controller_batch', ['controller_id', 'batch'], unique=True)
        batch_op.create_index('uq_certificates_controller_sequence', ['controller_id', 'sequence'], unique=True)

    op.create_table('certificate_items',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('certificate_id', _ID, nullable=False),
    sa.Column('disposal_id', _ID, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_certificate_items_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['disposal_id'], ['disposals.id'], name=op.f('fk_certificate_items_disposal_id_disposals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_items')),
    sa.UniqueConstraint('disposal_id', name=op.f('uq_certificate_items_disposal_id'))
    )
    with op.batch_alter_table('certificate_items', schema=None) as batch_op:
        batch_op.create_index('ix_certificate_items_certificate_id', ['certificate_id'], unique=False)

    op.create_table('advance_notices',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('controller_id', _ID, nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('window_days', sa.Integer(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['controller_id'], ['controllers.id'], name=op.f('fk_advance_notices_controller_id_controllers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_advance_notices'))
    )
    with op.batch_alter_table('advance_notices', schema=None) as batch_op:
        batch_op.create_index('ix_advance_notices_controller_id', ['controller_id'], unique=False)

    op.create_table('advance_notice_items',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('notice_id', _ID, nullable=False),
    sa.Column('record_id', _ID, nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['notice_id'], ['advance_notices.id'], name=op.f('fk_advance_notice_items_notice_id_advance_notices')),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_advance_notice_items_record_id_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_advance_notice_items'))
    )
    with op.batch_alter_table('advance_notice_items', schema=None) as batch_op:
        batch_op.create_index('uq_advance_notice_items_record_due', ['record_id', 'due_on'], unique=True)
        batch_op.create_index('ix_advance_notice_items_notice_id', ['notice_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('certificate_id', _ID, nullable=True),
    sa.Column('advance_notice_id', _ID, nullable=True),
    sa.Column('controller_id', _ID, nullable=True),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['advance_notice_id'], ['advance_notices.id'], name=op.f('fk_notifications_advance_notice_id_advance_notices')),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_notifications_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['controller_id'], ['controllers.id'], name=op.f('fk_notifications_controller_id_controllers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notifications_idempotency_key'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_notifications_certificate_id', ['certificate_id'], unique=False)
        batch_op.create_index('ix_notifications_advance_notice_id', ['advance_notice_id'], unique=False)

    op.create_table('acknowledgements',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('certificate_id', _ID, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_acknowledgements_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acknowledgements'))
    )
    with op.batch_alter_table('acknowledgements', schema=None) as batch_op:
        batch_op.create_index('ix_acknowledgements_certificate_id', ['certificate_id'], unique=False)

    op.create_table('controller_settings',
    sa.Column('controller_id', _ID, nullable=False),
    sa.Column('advance_notice_days', sa.Integer(), nullable=True),
    sa.Column('channels', sa.String(length=100), nullable=True),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['controller_id'], ['controllers.id'], name=op.f('fk_controller_settings_controller_id_controllers')),
    sa.PrimaryKeyConstraint('controller_id', name=op.f('pk_controller_settings'))
    )


def downgrade() -> None:
    op.drop_table('controller_settings')
    op.drop_table('acknowledgements')
    op.drop_table('notifications')
    op.drop_table('advance_notice_items')
    op.drop_table('advance_notices')
    op.drop_table('certificate_items')
    op.drop_table('certificates')
