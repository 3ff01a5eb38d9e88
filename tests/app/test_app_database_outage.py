"""PostgreSQL away: a fast JSON 503 instead of a held worker, cached reads still answered from Redis.

Two kinds of outage, as on real hosts: a stopped PostgreSQL (connections refused; our own server, stopped
and started again here, so the session's database is never disturbed) and a host that drops packets,
played by a listener that accepts TCP connections and never answers (libpq then waits for its
connect_timeout, exactly as for unanswered SYNs). Settings: DB_CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT,
DB_BREAKER_COOLDOWN (app/README.md, Database outage).
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from app_helpers import app_config, run_cli
from app_services import PostgresServer, _as_postgres
from flask import Flask, g
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from talentsphere import create_app
from talentsphere.config import ConfigError, load_config
from talentsphere import db as db_module

PREFIX = "ts:outage:"  # inside the app user's ts:* ACL, apart from the other tests' cache entries
CACHED = ["/api/categories", "/api/jobs/featured", "/api/jobs?per_page=5", "/api/companies/company-1"]
UNCACHED = ["/api/companies", "/api/jobs/1", "/api/auth/me"]


# Fixtures ----------------------------------------------------------------------------------------------------
@dataclass
class OwnPostgres:
    """A PostgreSQL of this module's own (stopped and started by the tests) with a seeded database."""
    server: PostgresServer
    url: str

    @property
    def data_dir(self) -> Path:
        assert self.server.workdir is not None
        return self.server.workdir / "data"

    def _pg_ctl(self, *args: str) -> None:
        assert self.server.bin_dir is not None
        subprocess.run(_as_postgres([str(self.server.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        """Fast shutdown: sessions are terminated, new connections refused."""
        self._options = shlex.split((self.data_dir / "postmaster.opts").read_text())[3:]  # after postgres -D dir
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        """Start again with the options it ran with."""
        assert self.server.workdir is not None
        self._pg_ctl("-o", shlex.join(self._options), "-l", str(self.server.workdir / "log"), "-w", "start")


@pytest.fixture(scope="module")
def own_pg(redis_server) -> Iterator[OwnPostgres]:  # noqa: ANN001
    """Our own PostgreSQL with a migrated database of 300 seeded jobs (never an external server)."""
    if os.environ.get("TS_TEST_DATABASE_URL"):
        pytest.skip("TS_TEST_DATABASE_URL is an external server; these tests need to stop PostgreSQL")
    server = PostgresServer.start()
    try:
        server.create_app_role()
        url = server.create_database(f"ts_outage_{secrets.token_hex(4)}")
        env = {**os.environ, "FLASK_ENV": "production", "DATABASE_URL": url, "REDIS_URL": redis_server.app_url,
               "SECRET_KEY": secrets.token_urlsafe(48), "CACHE_KEY_PREFIX": PREFIX, "PROXY_COUNT": "0"}
        for args in (("migrate",), ("seed", "--jobs", "300", "--seed", "3")):
            result = run_cli(env, *args)
            assert result.returncode == 0, result.stderr
        yield OwnPostgres(server, url)
    finally:
        server.stop()


@pytest.fixture
def make_app(app_env, own_pg) -> Iterator:  # noqa: ANN001
    """create_app(**overrides) on our database with a short breaker cooldown; engines disposed afterwards."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        config = app_config(app_env, DATABASE_URL=own_pg.url, CACHE_KEY_PREFIX=PREFIX, DB_BREAKER_COOLDOWN=1.0)
        application = create_app({**config, **overrides})
        apps.append(application)
        return application

    yield build
    for application in apps:
        application.extensions["talentsphere.db"].engine.dispose()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a host dropping packets, to libpq)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def with_port(url: str, port: int) -> str:
    """``url`` with another port."""
    head, _, tail = url.rpartition("@")
    host, _, rest = tail.partition(":")
    return f"{head}@{host}:{port}/{rest.partition('/')[2]}"


@pytest.fixture
def warm_app(make_app) -> Flask:  # noqa: ANN001
    """An app on the live database whose requests filled the cache entries of CACHED (cleared first)."""
    application = make_app()
    application.extensions["talentsphere.cache"].clear_all()
    client = application.test_client()
    for url in CACHED:
        assert client.get(url).status_code == 200, url
    return application


@pytest.fixture
def stopped(own_pg) -> Iterator[OwnPostgres]:  # noqa: ANN001
    """Our PostgreSQL stopped for the test (started again afterwards, whatever happens)."""
    own_pg.stop()
    try:
        yield own_pg
    finally:
        own_pg.start()


def assert_json_503(response) -> None:  # noqa: ANN001
    """The API's one shape for "database unavailable"."""
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def token_for(application: Flask, user_id: int) -> str:
    """A valid bearer token for ``user_id`` (minted without the database, as login would sign it)."""
    from itsdangerous import URLSafeTimedSerializer

    from talentsphere.security import TOKEN_SALT
    return URLSafeTimedSerializer(application.config["SECRET_KEY"], salt=TOKEN_SALT).dumps({"uid": user_id})


def timed(client, url: str, **kwargs: Any) -> tuple[Any, float]:  # noqa: ANN001
    started = time.perf_counter()
    response = client.get(url, **kwargs)
    return response, time.perf_counter() - started


# Settings ----------------------------------------------------------------------------------------------------
def test_outage_settings_have_documented_defaults() -> None:
    config = load_config({"FLASK_ENV": "development"})
    assert (config["DB_CONNECT_TIMEOUT"], config["DB_STATEMENT_TIMEOUT"], config["DB_BREAKER_COOLDOWN"]) == (2, 5.0, 0.5)


@pytest.mark.parametrize("variable, value", [
    ("DB_CONNECT_TIMEOUT", "1"), ("DB_CONNECT_TIMEOUT", "0"), ("DB_CONNECT_TIMEOUT", "2.5"),
    ("DB_STATEMENT_TIMEOUT", "-1"), ("DB_STATEMENT_TIMEOUT", "soon"), ("DB_BREAKER_COOLDOWN", "-5"),
])
def test_invalid_outage_settings_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_config({"FLASK_ENV": "development", variable: value})


def test_the_web_engine_has_the_timeouts_and_the_console_commands_no_statement_timeout(make_app, own_pg) -> None:  # noqa: ANN001
    application = make_app(DB_CONNECT_TIMEOUT=3, DB_STATEMENT_TIMEOUT=4.5)
    with application.extensions["talentsphere.db"].engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "4500ms"
        parameters = conn.connection.dbapi_connection.info.dsn_parameters
    assert (parameters["connect_timeout"], parameters["tcp_user_timeout"]) == ("3", "3000")
    console = db_module.Database()
    console.configure(load_config({"FLASK_ENV": "development", "DATABASE_URL": own_pg.url}))
    try:
        with console.engine.connect() as conn:  # migrations, index builds and seeding may run for minutes
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "0"
    finally:
        console.engine.dispose()


def test_a_statement_over_the_timeout_is_cancelled_as_a_json_503(make_app) -> None:  # noqa: ANN001
    application = make_app(DB_STATEMENT_TIMEOUT=0.2)

    @application.get("/test/slow")
    def slow() -> dict[str, Any]:
        from talentsphere.db import session
        session().execute(text("SELECT pg_sleep(2)"))
        return {"slept": True}

    response, elapsed = timed(application.test_client(), "/test/slow")
    assert_json_503(response)
    assert elapsed < 1.5


# A host that drops packets -----------------------------------------------------------------------------------
def test_a_silent_database_host_costs_one_connect_timeout_then_immediate_503s(
        warm_app, make_app, blackhole, own_pg) -> None:  # noqa: ANN001
    application = make_app(DATABASE_URL=with_port(own_pg.url, blackhole), DB_BREAKER_COOLDOWN=30.0)
    client = application.test_client()
    auth = {"Authorization": f"Bearer {token_for(application, 1)}"}
    breaker = application.extensions["talentsphere.db"].breaker

    # Cache hits open no database session: answered at once, and no connection was even attempted.
    for url in CACHED:
        response, elapsed = timed(client, url)
        assert response.status_code == 200 and elapsed < 0.5, (url, elapsed)
    assert not breaker.is_open

    response, elapsed = timed(client, "/api/companies")  # the one request that waits: DB_CONNECT_TIMEOUT (2 s)
    assert_json_503(response)
    assert 1.5 < elapsed < 3.5, elapsed
    assert breaker.is_open

    started = time.perf_counter()
    for _ in range(10):
        for url in UNCACHED:
            assert_json_503(client.get(url, headers=auth))
    assert time.perf_counter() - started < 1.0  # 30 requests, none waiting for the database
    for url in CACHED:
        response, elapsed = timed(client, url)
        assert response.status_code == 200 and elapsed < 0.5, (url, elapsed)

    response, elapsed = timed(client, "/health/ready")
    assert response.status_code == 503 and elapsed < 0.5
    assert response.get_json() == {"status": "unavailable", "database": "unavailable", "redis": "ok",
                                   "release": client.application.config["RELEASE_ID"]}


class Switch:
    """A TCP port that is silent (accepts, never answers: a host dropping packets) until `forward_to(port)`,
    after which new connections are relayed to that port (the database host is back)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.target: int | None = None
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def forward_to(self, port: int) -> None:
        self.target = port

    def _accept(self) -> None:
        while True:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            self.held.append(client)
            if self.target is not None:
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self.held.append(upstream)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def test_while_open_no_request_waits_and_the_background_probe_closes_the_breaker_on_return(
        make_app, own_pg) -> None:  # noqa: ANN001
    switch = Switch()
    try:
        application = make_app(DATABASE_URL=with_port(own_pg.url, switch.port), DB_BREAKER_COOLDOWN=0.2)
        client = application.test_client()
        breaker = application.extensions["talentsphere.db"].breaker
        assert_json_503(client.get("/api/companies"))  # trips the breaker after the 2 s connect timeout
        assert breaker.is_open
        for _ in range(5):  # the background probe waits on the silent host, never a request
            response, elapsed = timed(client, "/api/jobs/1")
            assert_json_503(response)
            assert elapsed < 0.5
        switch.forward_to(int(own_pg.url.rpartition("@")[2].partition(":")[2].partition("/")[0]))
        returned = time.monotonic()
        while breaker.is_open and time.monotonic() - returned < 6:
            time.sleep(0.05)
        # Closed by the probe alone (no request was made meanwhile): a silent probe in flight may take its
        # 2 s connect timeout, then the next one (0.2 s later) connects.
        assert not breaker.is_open and time.monotonic() - returned < 3
        assert client.get("/api/companies").status_code == 200
    finally:
        switch.close()


def test_the_breaker_refuses_every_caller_while_open_and_probes_in_the_background() -> None:
    attempts: list[float] = []
    breaker = db_module.DatabaseBreaker(interval=0.1)

    def probe() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("still refused")
        breaker.record_success()

    breaker.probe = probe
    assert breaker.allow()
    breaker.record_failure(RuntimeError("refused"))
    refused: list[bool] = []
    worker = threading.Thread(target=lambda: refused.append(breaker.allow()))
    worker.start()
    worker.join()
    assert refused == [False] and not breaker.allow() and breaker.retry_after == 0.1
    deadline = time.monotonic() + 3
    while breaker.is_open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not breaker.is_open and breaker.allow()
    assert len(attempts) == 3 and all(later - earlier >= 0.09 for earlier, later in zip(attempts, attempts[1:]))


# A stopped PostgreSQL ----------------------------------------------------------------------------------------
def test_stopped_postgres_cached_reads_200_others_json_503_then_recovery(warm_app, stopped) -> None:  # noqa: ANN001
    client = warm_app.test_client()
    breaker = warm_app.extensions["talentsphere.db"].breaker
    for url in UNCACHED[:2]:
        response, elapsed = timed(client, url)
        assert_json_503(response)
        assert elapsed < 1.0
    assert breaker.is_open
    for url in CACHED:
        assert client.get(url).status_code == 200, url
    response, elapsed = timed(client, "/health/ready")
    assert response.status_code == 503 and elapsed < 0.5
    stopped.start()
    try:
        deadline = time.monotonic() + 5  # the background probe (every DB_BREAKER_COOLDOWN) closes the breaker
        while breaker.is_open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/api/companies").status_code == 200
        assert not breaker.is_open
        assert client.get("/health/ready").get_json()["status"] == "ok"
    finally:
        stopped.stop()


def http_get(base: str, path: str) -> tuple[int, str, str, str | None]:
    """(status, content type, body, Retry-After) of a real HTTP GET."""
    try:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return (response.status, response.headers.get("Content-Type", ""), response.read().decode(),
                    response.headers.get("Retry-After"))
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode(), exc.headers.get("Retry-After")


@pytest.fixture
def served(make_app) -> Iterator[tuple[Flask, str]]:  # noqa: ANN001
    """The app behind a real threaded WSGI server: an exception escaping the app is its plain 500 page."""
    application = make_app()
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield application, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_every_error_while_postgres_stops_and_starts_under_load_is_json_503(served, own_pg) -> None:  # noqa: ANN001
    application, base = served
    paths = ["/api/companies", "/api/jobs/1", "/api/companies?industry=Software", "/health/ready",
             "/api/categories"]
    results: list[tuple[str, tuple[int, str, str, str | None]]] = []
    stop_at = time.monotonic() + 6.0

    def load(offset: int) -> None:
        n = offset
        while time.monotonic() < stop_at:
            # A fresh search each time: never a cache hit, always PostgreSQL.
            path = paths[n % len(paths)] if n % 3 else f"/api/jobs?q=engineer{offset}x{n}"
            results.append((path, http_get(base, path)))
            n += 1

    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    own_pg.stop()
    time.sleep(1.5)
    own_pg.start()
    for thread in threads:
        thread.join()

    errors = [(path, r) for path, r in results if r[0] != 200]
    assert errors, "no request saw the database down"
    for path, (status, content_type, body, retry_after) in errors:
        assert status == 503, (path, status, body[:300])
        assert content_type.startswith("application/json"), (path, body[:300])
        if path == "/health/ready":  # its own documented shape
            assert '"database":"unavailable"' in body.replace(" ", ""), body
        else:
            assert '"service_unavailable"' in body and retry_after is not None, (path, body[:300])
    assert any(r[0] == 200 for _, r in results[-20:]), "not back after the restart"


# Teardown ----------------------------------------------------------------------------------------------------
def test_a_connection_lost_before_teardown_leaves_the_response_intact(served, own_pg) -> None:  # noqa: ANN001
    """The backend is terminated after the view ran: closing the session fails in teardown, quietly."""
    application, base = served
    admin = psycopg2.connect(own_pg.server.admin_url)
    admin.autocommit = True
    terminated: list[int] = []

    @application.after_request
    def terminate_backend(response):  # noqa: ANN001, ANN202
        if "db_session" in g and not terminated:
            pid = g.db_session.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                terminated.append(pid)
                for _ in range(100):  # until the backend is gone
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                    if cur.fetchone()[0] == 0:
                        break
                    time.sleep(0.02)
        return response

    try:
        status, content_type, body, _ = http_get(base, "/api/companies?per_page=2")
    finally:
        admin.close()
    assert terminated
    assert status == 200, body[:300]
    assert content_type.startswith("application/json") and '"items"' in body
    assert http_get(base, "/api/companies?per_page=2")[0] == 200  # the dead connection was discarded


@pytest.mark.parametrize("raised, status, code", [
    (OperationalError("ROLLBACK", {}, psycopg2.OperationalError("server closed the connection")), 503,
     "service_unavailable"),
    (RuntimeError("a bug in a teardown"), 500, "internal_error"),
])
def test_an_error_raised_in_teardown_is_still_json(served, raised, status, code) -> None:  # noqa: ANN001
    application, base = served

    @application.teardown_appcontext
    def failing_teardown(_exc):  # noqa: ANN001, ANN202
        raise raised

    got, content_type, body, _ = http_get(base, "/health")
    assert got == status, body[:300]
    assert content_type.startswith("application/json"), body[:300]
    assert f'"{code}"' in body
