"""Drop ix_jobs_category_type_level: no query reads it since search reads its matches in sort order, and
`talentsphere optimize-db` no longer creates it (its place among the 38 indexes is ix_jobs_type_level_posted,
which optimize-db creates after this migration). optimize-db only adds the indexes it knows by name, so on a
database built by an earlier release the old index stays, costing every write to jobs, unless a migration
drops it.

CONCURRENTLY: a plain DROP INDEX takes an ACCESS EXCLUSIVE lock on jobs, and while it waits for a long reader
every query on jobs queues behind it (app/README.md, Migrations); DROP INDEX CONCURRENTLY takes a lock that
reads and writes do not wait for. It cannot run inside a transaction, hence the autocommit block; it still
waits for the transactions using jobs, at most MIGRATION_LOCK_TIMEOUT. IF EXISTS: databases that never had
the index, and a retry after an interrupted drop (which leaves the index INVALID, still droppable), pass.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    with op.get_context().autocommit_block():
        op.drop_index('ix_jobs_category_type_level', table_name='jobs', postgresql_concurrently=True,
                      if_exists=True)


def downgrade() -> None:
    """Revert: the index this revision dropped, built without blocking writes."""
    with op.get_context().autocommit_block():
        op.create_index('ix_jobs_category_type_level', 'jobs', ['category_id', 'employment_type',
                                                                'experience_level'],
                        postgresql_where="status = 'published'", postgresql_concurrently=True,
                        if_not_exists=True)
