"""web_users: a unique, normalised user-name key and the one way each user signs in

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 10:00:00

``username_key`` is the user name NFKC-normalised and case-folded, without invisible
characters (``retentiond.web.usernames.username_key``), under a unique constraint: no two
accounts can differ only in case, width or a zero-width space. It is computed here for every
existing user; if two existing users share a key the upgrade stops, naming them, and changes
nothing (rename one first: ``UPDATE web_users SET username = '...' WHERE id = ...``).

``auth_method`` is how the user signs in, and the only way: ``password`` for a user with a
password hash, ``oidc`` (OpenID Connect) for one without, exactly as the two could sign in
before (a user without a hash could only use OpenID Connect; one with a hash is kept to the
password, as it was created).
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_IGNORED = ("Cc", "Cf", "Zl", "Zp", "Zs")


def _key(name: str) -> str:
    # A frozen copy of retentiond.web.usernames.username_key as of this revision: a migration
    # must compute what it computed the day it was written.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = "".join(c for c in folded if unicodedata.category(c) not in _IGNORED)
    # Once more: a mark that followed an invisible character now follows its letter.
    return unicodedata.normalize("NFKC", visible)


def upgrade() -> None:
    conn = op.get_bind()
    users = sa.table('web_users', sa.column('id'), sa.column('username'),
                     sa.column('password_hash'), sa.column('username_key'),
                     sa.column('auth_method'))
    # Checked before any change: SQLite commits each ALTER TABLE as it goes.
    rows = conn.execute(sa.select(users.c.id, users.c.username, users.c.password_hash)
                        .order_by(users.c.id)).all()
    by_key: dict[str, list[str]] = {}
    for _id, username, _hash in rows:
        by_key.setdefault(_key(username), []).append(username)
    clashes = [names for names in by_key.values() if len(names) > 1]
    if clashes:
        listed = "; ".join(", ".join(repr(n) for n in names) for names in clashes)
        raise RuntimeError(
            "migration 0010 refused: these users' names differ only in case, width or an "
            f"invisible character, and would be taken for one another: {listed}. Rename all "
            "but one of each (UPDATE web_users SET username = 'NEW' WHERE username = 'OLD'), "
            "then run 'retentiond db upgrade' again. Nothing was changed.")
    with op.batch_alter_table('web_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('auth_method', sa.String(length=20), nullable=True))
    for user_id, username, password_hash in rows:
        conn.execute(users.update().where(users.c.id == user_id).values(
            username_key=_key(username),
            auth_method='password' if password_hash is not None else 'oidc'))
    with op.batch_alter_table('web_users', schema=None) as batch_op:
        batch_op.alter_column('username_key', existing_type=sa.String(length=200),
                              nullable=False)
        batch_op.alter_column('auth_method', existing_type=sa.String(length=20), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_web_users_username_key'),
                                          ['username_key'])


def downgrade() -> None:
    with op.batch_alter_table('web_users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_web_users_username_key'), type_='unique')
        batch_op.drop_column('auth_method')
        batch_op.drop_column('username_key')
