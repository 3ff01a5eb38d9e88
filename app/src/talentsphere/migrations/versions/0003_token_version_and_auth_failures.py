"""users.token_version and the auth_failures table.

token_version: every token carries the version its user had when it was signed; logging out everywhere or
changing the password bumps it, and a token whose version differs is refused ("token revoked"). NOT NULL with
server default 0: PostgreSQL 11+ adds such a column without rewriting users (a catalog change under a short
lock, bounded by MIGRATION_LOCK_TIMEOUT), and the previous release's INSERTs, which do not name the column,
get 0, the version of the tokens it signs.

auth_failures: failed logins counted per key ('account:<email>', 'address:<ip>') over a window, and the
lockout they lead to. A new table, so nothing of the previous release depends on it; its primary key is its
only index (lookups are by key), none of the 38 performance indexes are involved.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.add_column('users', sa.Column('token_version', sa.Integer(), server_default='0', nullable=False))
    op.create_table('auth_failures',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_auth_failures'))
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table('auth_failures')
    op.drop_column('users', 'token_version')
