"""Fixtures for the app tests: real PostgreSQL and Redis, a migrated + seeded + indexed database, the app.

The session prepares one database with TS_TEST_SEED_JOBS (default 100000) seeded jobs through the real
console script (`talentsphere migrate`, `seed`, `optimize-db` twice) and keeps each command's output so
tests can assert on it. Servers are stopped at the end even when tests fail.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parent))
from app_helpers import SEED_JOBS, Actor, Prepared, app_config, make_employer, register, run_cli  # noqa: E402
from app_services import PostgresServer, RedisServer  # noqa: E402

from talentsphere import create_app  # noqa: E402

@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server (ours, or TS_TEST_DATABASE_URL's) with a throwaway non-superuser app role."""
    given = os.environ.get("TS_TEST_DATABASE_URL")
    server = PostgresServer(admin_url=given) if given else PostgresServer.start()
    try:
        server.create_app_role()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis (ours, or TS_TEST_REDIS_URL's) with the production ACL shape for the app user."""
    given = os.environ.get("TS_TEST_REDIS_URL")
    server = RedisServer(admin_url=given) if given else RedisServer.start()
    try:
        server.provision()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(pg: PostgresServer) -> str:
    """The app role's URL for the session's main database."""
    return pg.create_database(f"ts_test_{secrets.token_hex(4)}")


@pytest.fixture(scope="session")
def app_env(database_url: str, redis_server: RedisServer) -> dict[str, str]:
    """Environment for the console script and Gunicorn: production mode with real values."""
    return {**os.environ, "FLASK_ENV": "production", "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.app_url, "SECRET_KEY": secrets.token_urlsafe(48),
            "CACHE_KEY_PREFIX": "ts:", "PROXY_COUNT": "0"}


@pytest.fixture(scope="session")
def prepared(app_env: dict[str, str]) -> Prepared:
    """migrate -> seed N jobs -> optimize-db (fresh) -> optimize-db (again)."""
    migrate = run_cli(app_env, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    started = time.perf_counter()
    seeded = run_cli(app_env, "seed", "--jobs", str(SEED_JOBS), "--seed", "7")
    seed_seconds = time.perf_counter() - started
    assert seeded.returncode == 0, seeded.stderr
    first = run_cli(app_env, "optimize-db")
    second = run_cli(app_env, "optimize-db")
    return Prepared(migrate, seeded, seed_seconds, first, second)


@pytest.fixture(scope="session")
def app(prepared: Prepared, app_env: dict[str, str]):  # noqa: ANN201
    """The app under test, on the prepared database."""
    application = create_app(app_config(app_env))
    yield application
    application.extensions["talentsphere.db"].engine.dispose()


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    """A test client; the cache starts empty for every test."""
    app.extensions["talentsphere.cache"].clear_all()
    app.extensions["talentsphere.cache"].breaker.reset()
    return app.test_client()


@pytest.fixture
def engine(app) -> Engine:  # noqa: ANN001
    """The app's engine."""
    return app.extensions["talentsphere.db"].engine


@pytest.fixture
def employer(client) -> Actor:  # noqa: ANN001
    """An employer with a company."""
    return make_employer(client)


@pytest.fixture
def seeker(client) -> Actor:  # noqa: ANN001
    """A job seeker."""
    return register(client, "job_seeker")
