"""The database resource: a pooled engine, a per-request session, slow-statement events, a circuit breaker.

The pool is sized by DB_POOL_SIZE / DB_MAX_OVERFLOW per process (PostgreSQL's max_connections must cover
every worker's pool), pre-pings so a connection dropped by a PostgreSQL restart is replaced instead of failing
a request, and recycles connections after DB_POOL_RECYCLE seconds. Slow statements are logged and counted
through SQLAlchemy engine events.

A database that is away must cost a fast JSON 503, not a held worker (app/README.md, Database outage):

- connecting gives up after DB_CONNECT_TIMEOUT seconds (libpq ``connect_timeout``), and a connection whose
  sent data the host stops acknowledging is dropped after as long (``tcp_user_timeout``), so a pre-ping to
  a host that vanished does not wait for TCP's retransmissions (minutes);
- the web app's statements are cancelled by PostgreSQL after DB_STATEMENT_TIMEOUT seconds
  (``statement_timeout``); the console commands (migrations, index builds, seeding) have none;
- after a connection attempt fails, ``DatabaseBreaker`` answers every request that needs the database with
  a 503 at once, while a background thread (per process) tries to connect every DB_BREAKER_COOLDOWN
  seconds and closes the breaker on its first success: no request waits on an unreachable database, and
  the first requests after its return are served within that interval.
  Requests answered from Redis never open a session, so they keep working meanwhile.

PostgreSQL keeps one password per role, so a rotation of the app role's password cannot give it two at once.
DATABASE_PASSWORD_FALLBACK gives the app a second one instead (``PasswordChoice``): while the deploy switches
the role to the new password, hosts that still lead with the old one connect with the fallback, and nothing
fails (the rotation of docs/secrets.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from . import metrics
from .errors import BreakerOpen, DatabaseUnavailable

log = logging.getLogger("talentsphere.sql")
breaker_log = logging.getLogger("talentsphere.db")


class DatabaseBreaker:
    """Per-process circuit breaker for PostgreSQL connections.

    Closed: everything goes through. A failed connection attempt opens it: from then on every caller is
    refused at once (a JSON 503), and a background thread of this process tries to connect every
    ``interval`` seconds; its first success closes the breaker. No request waits on an unreachable database
    after the attempt that opened the breaker, and the database serves again within ``interval`` plus one
    connection of its return (a restart costs its own duration plus that, not a fixed cooldown).
    ``interval`` 0 disables the breaker.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._tripped = False
        self._prober: threading.Thread | None = None
        self._probe = threading.local()
        self.probe: Callable[[], None] | None = None  # set by install_breaker: one connection attempt

    @property
    def is_open(self) -> bool:
        """True from a failed connection attempt until a successful one."""
        return self._tripped

    @property
    def retry_after(self) -> float:
        """Seconds a client should wait before trying again (the probe interval while open)."""
        return self.interval if self._tripped else 0.0

    def allow(self) -> bool:
        """May this thread use the database now? (Only the prober while the breaker is open.)"""
        return not self._tripped or self.interval <= 0 or getattr(self._probe, "active", False)

    def check(self) -> None:
        """Raise the 503 ``DatabaseUnavailable`` unless ``allow()``."""
        if not self.allow():
            raise DatabaseUnavailable(self.retry_after or 1.0)

    def record_success(self) -> None:
        """A connection was made or checked out: close the breaker."""
        if not self._tripped:
            return
        with self._lock:
            was_open, self._tripped = self._tripped, False
        if was_open:
            breaker_log.warning("database reachable again; circuit breaker closed")

    def record_failure(self, exc: BaseException) -> None:
        """A connection attempt failed: refuse the database and probe it in the background until it answers."""
        with self._lock:
            opened = not self._tripped
            self._tripped = True
            start = self.interval > 0 and self.probe is not None and (self._prober is None
                                                                     or not self._prober.is_alive())
            if start:
                self._prober = threading.Thread(target=self._probe_until_closed, name="db-breaker-probe",
                                                daemon=True)
                self._prober.start()
        if opened and self.interval > 0:
            breaker_log.warning("database unavailable (%s); answering 503 and trying it every %gs in the "
                                "background", first_line(exc), self.interval)

    def _probe_until_closed(self) -> None:
        self._probe.active = True
        while self._tripped:
            time.sleep(self.interval)
            try:
                self.probe()  # a success closes the breaker through the connection hooks
            except Exception as exc:  # noqa: BLE001 (any failure: try again after the interval)
                breaker_log.debug("database probe failed: %s", first_line(exc))

    def reset(self) -> None:
        """Close the breaker (tests)."""
        with self._lock:
            self._tripped = False


def first_line(exc: BaseException) -> str:
    """The first line of an error message (libpq's go on with hints on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_args(config: dict[str, Any], statement_timeout: float = 0) -> dict[str, Any]:
    """libpq parameters: connect timeout, TCP user timeout, application name, statement timeout."""
    connect_timeout = int(config["DB_CONNECT_TIMEOUT"])
    args: dict[str, Any] = {"connect_timeout": connect_timeout, "tcp_user_timeout": connect_timeout * 1000,
                            "application_name": "talentsphere"}
    if statement_timeout:
        options = make_url(config["DATABASE_URL"]).query.get("options")
        options = options[-1] if isinstance(options, tuple) else options
        own = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
        args["options"] = f"{options} {own}" if options else own
    return args


class PasswordChoice:
    """Opens connections with DATABASE_URL's password, or with the fallback when PostgreSQL refuses that one.

    The password that logged in last is tried first, so during a rotation a host pays one refused attempt,
    not one per connection. Only a refused password moves on to the other: any other failure (host down,
    timeout) is raised as it is, for the breaker.
    """

    def __init__(self, fallback: str = ""):
        self.fallback = fallback
        self.use_fallback = False

    def connect(self, dialect: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if not self.fallback:
            return dialect.connect(*cargs, **cparams)
        first, second = (self.fallback, cparams.get("password")) if self.use_fallback else \
            (cparams.get("password"), self.fallback)
        try:
            connection = dialect.connect(*cargs, **{**cparams, "password": first})
        except Exception as exc:
            if not password_refused(exc):
                raise
            log.info("PostgreSQL refused the %s password; trying the %s one (a password rotation is under way)",
                     *(("fallback", "first") if self.use_fallback else ("first", "fallback")))
            connection = dialect.connect(*cargs, **{**cparams, "password": second})
            self.use_fallback = not self.use_fallback
        return connection


#: How a refused password reads (libpq reports SQLSTATE 28P01 as text only): PostgreSQL's wording, and
#: PgBouncer's when the app connects through it.
REFUSED_PASSWORD = ("password authentication failed", "SASL authentication failed")


def password_refused(exc: BaseException) -> bool:
    """Whether a connection attempt failed on the password."""
    return any(words in str(exc) for words in REFUSED_PASSWORD)


def make_engine(config: dict[str, Any], statement_timeout: float = 0,
                breaker: DatabaseBreaker | None = None) -> Engine:
    """Create the engine with the configured pool (size, overflow, timeout, recycle), pre-ping and timeouts.

    ``statement_timeout`` (seconds, 0 = none) is the web app's; ``breaker`` guards every new connection.
    """
    engine = create_engine(
        config["DATABASE_URL"],
        pool_size=config["DB_POOL_SIZE"],
        max_overflow=config["DB_MAX_OVERFLOW"],
        pool_timeout=config["DB_POOL_TIMEOUT"],
        pool_recycle=config["DB_POOL_RECYCLE"],
        pool_pre_ping=True,
        echo=config["SQL_ECHO"],
        connect_args=connect_args(config, statement_timeout),
    )
    install_statement_events(engine, float(config["SLOW_QUERY_THRESHOLD"]))
    passwords = PasswordChoice(config.get("DATABASE_PASSWORD_FALLBACK", ""))
    if breaker is not None:
        install_breaker(engine, breaker, passwords)
    elif passwords.fallback:
        event.listen(engine, "do_connect", lambda dialect, conn_rec, cargs, cparams:
                     passwords.connect(dialect, cargs, cparams))
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


def install_breaker(engine: Engine, breaker: DatabaseBreaker, passwords: PasswordChoice | None = None) -> None:
    """Route every new DBAPI connection through ``breaker``; a checkout (after pre-ping) closes it."""

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, conn_rec, cargs, cparams):  # noqa: ANN001, ANN202
        if not breaker.allow():
            raise BreakerOpen(f"not connecting for {breaker.retry_after:.1f}s more: the database circuit "
                              "breaker is open after a failed connection attempt")
        try:
            connection = (passwords or PasswordChoice()).connect(dialect, cargs, cparams)
        except Exception as exc:
            breaker.record_failure(exc)
            raise
        breaker.record_success()
        return connection

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_conn, record, proxy):  # noqa: ANN001
        breaker.record_success()

    def probe() -> None:
        # A pooled connection, pre-pinged: a success warms the pool for the first requests after it.
        engine.raw_connection().close()

    breaker.probe = probe


def _dispose_in_forked_children(engine: Engine) -> None:
    """Give a forked child (a Gunicorn worker under preload_app) a pool of its own.

    A connection opened before the fork would be shared by parent and child: two processes writing one socket
    corrupt the protocol. ``dispose(close=False)`` drops the inherited connections without closing them (closing
    would end the parent's sessions too), as SQLAlchemy's pooling guide prescribes for multiprocessing. The
    engine is held weakly, so the hook does not keep discarded apps (tests build many) alive.
    """
    ref = weakref.ref(engine)

    def after_fork() -> None:
        child_engine = ref()
        if child_engine is not None:
            child_engine.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)


class Database:
    """Owns the engine and hands each request one session, closed at teardown."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None
        self.breaker = DatabaseBreaker(0.5)

    def configure(self, config: dict[str, Any], statement_timeout: float = 0) -> None:
        """Build the engine and session factory (CLI commands use this without a Flask app, and no
        statement timeout: index builds and seeding may run for minutes)."""
        self.breaker = DatabaseBreaker(float(config["DB_BREAKER_COOLDOWN"]))
        self.engine = make_engine(config, statement_timeout, self.breaker)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)
        _dispose_in_forked_children(self.engine)

    def init_app(self, app: Flask) -> None:
        """Bind to ``app``: build the engine (with DB_STATEMENT_TIMEOUT) and register session teardown."""
        self.configure(app.config, statement_timeout=float(app.config["DB_STATEMENT_TIMEOUT"]))
        app.extensions["talentsphere.db"] = self
        app.teardown_appcontext(self._close_session)

    @property
    def session(self) -> Session:
        """The current request's session, opened on first use; a 503 at once while the breaker is open."""
        if "db_session" not in g:
            assert self.sessionmaker is not None, "Database.init_app was not called"
            self.breaker.check()
            g.db_session = self.sessionmaker()
        return g.db_session

    def _close_session(self, _exc: BaseException | None) -> None:
        """Teardown: close the request's session; never raise, since nothing turns a teardown error into JSON.

        Closing rolls back on the connection, which fails when PostgreSQL went away after the view ran;
        the response is already made by then (and a failed commit was already a 503), so the connection
        is discarded and the error logged.
        """
        session = g.pop("db_session", None)
        if session is None:
            return
        try:
            session.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the request's database session failed (%s); connection discarded",
                        first_line(exc))
            try:
                session.invalidate()
            except Exception:  # noqa: BLE001 (the connection is gone either way)
                log.debug("invalidating the session failed", exc_info=True)

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
