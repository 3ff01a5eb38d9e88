"""The database resource: a pooled engine, a per-request session, and slow-statement events.

The pool is sized by DB_POOL_SIZE / DB_MAX_OVERFLOW per process (PostgreSQL's max_connections must cover
every worker's pool), pre-pings so a connection dropped by a PostgreSQL restart is replaced instead of failing
a request, and recycles connections after DB_POOL_RECYCLE seconds. Slow statements are logged and counted
through SQLAlchemy engine events.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from . import metrics

log = logging.getLogger("talentsphere.sql")


def make_engine(config: dict[str, Any]) -> Engine:
    """Create the engine with the configured pool (size, overflow, timeout, recycle) and pre-ping."""
    engine = create_engine(
        config["DATABASE_URL"],
        pool_size=config["DB_POOL_SIZE"],
        max_overflow=config["DB_MAX_OVERFLOW"],
        pool_timeout=config["DB_POOL_TIMEOUT"],
        pool_recycle=config["DB_POOL_RECYCLE"],
        pool_pre_ping=True,
        echo=config["SQL_ECHO"],
        connect_args={"connect_timeout": 5, "application_name": "talentsphere"},
    )
    install_statement_events(engine, float(config["SLOW_QUERY_THRESHOLD"]))
    metrics.POOL_SIZE.set(config["DB_POOL_SIZE"])
    return engine


def install_statement_events(engine: Engine, threshold: float) -> None:
    """Time every statement; log and count those slower than ``threshold`` seconds."""

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info.setdefault("query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _finish(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        elapsed = time.perf_counter() - conn.info["query_start"].pop()
        metrics.DB_STATEMENTS.inc()
        if elapsed >= threshold:
            metrics.SLOW_QUERIES.inc()
            # The statement text only: parameters may hold personal data or password hashes.
            log.warning("slow query %.3fs: %s", elapsed, " ".join(statement.split())[:500])

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_conn, record, proxy):  # noqa: ANN001
        metrics.POOL_CHECKED_OUT.inc()

    @event.listens_for(engine.pool, "checkin")
    def _checkin(dbapi_conn, record):  # noqa: ANN001
        metrics.POOL_CHECKED_OUT.dec()


class Database:
    """Owns the engine and hands each request one session, closed at teardown."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None

    def configure(self, config: dict[str, Any]) -> None:
        """Build the engine and session factory (CLI commands use this without a Flask app)."""
        self.engine = make_engine(config)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    def init_app(self, app: Flask) -> None:
        """Bind to ``app``: build the engine and register session teardown."""
        self.configure(app.config)
        app.extensions["talentsphere.db"] = self
        app.teardown_appcontext(self._close_session)

    @property
    def session(self) -> Session:
        """The current request's session, opened on first use."""
        if "db_session" not in g:
            assert self.sessionmaker is not None, "Database.init_app was not called"
            g.db_session = self.sessionmaker()
        return g.db_session

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    def pool_status(self) -> dict[str, int]:
        """Size, checked in/out and overflow of the connection pool."""
        assert self.engine is not None
        pool = self.engine.pool
        return {
            "size": pool.size(),  # type: ignore[attr-defined]
            "checked_in": pool.checkedin(),  # type: ignore[attr-defined]
            "checked_out": pool.checkedout(),  # type: ignore[attr-defined]
            "overflow": pool.overflow(),  # type: ignore[attr-defined]
        }


def current_db() -> Database:
    """The Database bound to the current app."""
    return current_app.extensions["talentsphere.db"]


def session() -> Session:
    """The current request's session."""
    return current_db().session
