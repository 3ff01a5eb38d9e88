"""Run the Alembic migrations shipped inside the package (``talentsphere migrate``).

The migration connection sets PostgreSQL's ``lock_timeout`` and ``statement_timeout`` (app/README.md,
Migrations): a DDL statement waiting for a lock makes every later query on that table queue behind it, so
it gives up after MIGRATION_LOCK_TIMEOUT instead, and its migration's transaction rolls back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .config import normalize_database_url

MIGRATIONS = Path(__file__).parent / "migrations"
#: Config.attributes key env.py reads the session settings from.
SESSION_SETTINGS = "talentsphere.session_settings"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of "canceling statement due to lock timeout"
QUERY_CANCELED = "57014"  # SQLSTATE of "canceling statement due to statement timeout"


class MigrationError(RuntimeError):
    """A migration stopped on a timeout; the message says what happened and how to proceed."""


def alembic_config(database_url: str, timeouts: Mapping[str, str] | None = None,
                   script_location: str | os.PathLike[str] | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; the URL never touches a file or argv.

    ``timeouts`` (``lock_timeout``, ``statement_timeout``: PostgreSQL durations, see
    config.migration_timeouts) are set on the migration connection; ``script_location`` is for tests.
    """
    config = Config()
    config.set_main_option("script_location", str(script_location or MIGRATIONS))
    # ConfigParser interpolation treats % specially (URL-encoded passwords contain it).
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    config.attributes[SESSION_SETTINGS] = dict(timeouts or {})
    return config


def _database_revision(database_url: str) -> str:
    """Where the database stands after a failure, read without waiting long for a lock."""
    engine = create_engine(normalize_database_url(database_url), poolclass=pool.NullPool,
                           connect_args={"connect_timeout": 5, "application_name": "talentsphere-migrate",
                                         "options": "-c lock_timeout=2s -c statement_timeout=5s"})
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
        return f"revision {', '.join(heads)}" if heads else "no revision (empty schema)"
    except SQLAlchemyError:  # e.g. alembic_version itself is locked
        return "the revision it had (alembic_version could not be read)"
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "head", timeouts: Mapping[str, str] | None = None,
            script_location: str | os.PathLike[str] | None = None) -> None:
    """Apply migrations up to ``revision``, each in its own transaction.

    Raises MigrationError when a statement hits ``lock_timeout`` or ``statement_timeout``: the migration
    that ran it is rolled back, the ones before it stay applied.
    """
    settings = dict(timeouts or {})
    try:
        command.upgrade(alembic_config(database_url, settings, script_location), revision)
    except DBAPIError as exc:
        code = getattr(exc.orig, "pgcode", None)
        if code not in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
            raise
        at = _database_revision(database_url)
        if code == LOCK_NOT_AVAILABLE:
            waited = settings.get("lock_timeout", "lock_timeout")
            message = (f"migration waited more than {waited} for a lock held by another transaction; retry when "
                       "the long transactions on the table have finished (pg_stat_activity and pg_locks show "
                       "them) or raise MIGRATION_LOCK_TIMEOUT. The migration was rolled back: the database "
                       f"stays at {at}")
        else:
            ran = settings.get("statement_timeout", "statement_timeout")
            message = (f"a migration statement ran longer than {ran} and was cancelled; raise "
                       "MIGRATION_STATEMENT_TIMEOUT or split the migration (backfill in batches). The migration "
                       f"was rolled back: the database stays at {at}")
        statement = " ".join(str(exc.statement or "").split())
        if statement:
            message += f" (statement: {statement[:200]})"
        raise MigrationError(message) from exc


def current(database_url: str) -> None:
    """Print the database's current revision."""
    command.current(alembic_config(database_url))
