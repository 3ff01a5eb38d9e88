"""Alembic environment: the URL comes from the app config (DATABASE_URL), the metadata from models.

Online, the connection carries the session settings talentsphere.migrate passes (``lock_timeout``,
``statement_timeout`` from MIGRATION_LOCK_TIMEOUT / MIGRATION_STATEMENT_TIMEOUT), as libpq ``options``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, make_url, pool

from talentsphere.migrate import SESSION_SETTINGS
from talentsphere.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL without a connection (``alembic upgrade --sql``)."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _connect_args(url: str) -> dict[str, Any]:
    """libpq parameters: a name pg_stat_activity shows, and ``options`` setting each session setting
    (validated durations: no spaces to escape)."""
    args: dict[str, Any] = {"application_name": "talentsphere-migrate"}
    settings = config.attributes.get(SESSION_SETTINGS) or {}
    own = " ".join(f"-c {name}={value}" for name, value in settings.items())
    if own:
        given = make_url(url).query.get("options")
        given = given[-1] if isinstance(given, tuple) else given
        args["options"] = f"{given} {own}" if given else own
    return args


def run_migrations_online() -> None:
    """Apply migrations over one connection, each in its own transaction."""
    url = config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=_connect_args(url))
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata,
                              transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
