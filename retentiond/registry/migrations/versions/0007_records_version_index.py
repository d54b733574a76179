"""records: index the policy version beside the category and rules digest

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 23:00:00

``ix_records_category_digest`` (category, rules_digest) becomes
``ix_records_category_digest_version`` (category, rules_digest, policy_version). Relabelling
the records of a category whose rules did not change (``recompute_stale``, run by every
evaluation) looks for those not yet under the policy version in force: with the version in the
index that is two empty range reads when nothing changed, where it read every record before.
The wider index serves every query the old one did (they test a prefix of it), so the old one is
dropped rather than kept beside it: each record update maintains one index, not two.
"""

from __future__ import annotations

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_category_digest_version',
                              ['category', 'rules_digest', 'policy_version'], unique=False)
        batch_op.drop_index('ix_records_category_digest')


def downgrade() -> None:
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_category_digest', ['category', 'rules_digest'],
                              unique=False)
        batch_op.drop_index('ix_records_category_digest_version')
