"""Fixtures for the app tests: real PostgreSQL and Redis, a migrated + seeded + indexed database, the app.

The session prepares one database with TS_TEST_SEED_JOBS (default 100000) seeded jobs through the real
console script (`talentsphere migrate`, `seed`, `optimize-db` twice) and keeps each command's output so
tests can assert on it. Servers are stopped at the end even when tests fail.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

sys.path.insert(0, str(Path(__file__).parent))
from app_services import PostgresServer, RedisServer  # noqa: E402

from talentsphere import create_app  # noqa: E402

SEED_JOBS = int(os.environ.get("TS_TEST_SEED_JOBS", "100000"))
VENV_BIN = Path(sys.executable).parent


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


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `talentsphere` console script."""
    return subprocess.run([str(VENV_BIN / "talentsphere"), *args], env=env, capture_output=True, text=True,
                          timeout=900)


@dataclass
class Prepared:
    """Outputs and timings of the session's setup commands."""
    migrate: subprocess.CompletedProcess[str]
    seed: subprocess.CompletedProcess[str]
    seed_seconds: float
    optimize_first: subprocess.CompletedProcess[str]
    optimize_second: subprocess.CompletedProcess[str]


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


def app_config(app_env: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Config overrides for create_app in tests."""
    return {"FLASK_ENV": "testing", "DATABASE_URL": app_env["DATABASE_URL"], "REDIS_URL": app_env["REDIS_URL"],
            "SECRET_KEY": app_env["SECRET_KEY"], "CACHE_KEY_PREFIX": "ts:", "PROXY_COUNT": 1,
            "REDIS_BREAKER_COOLDOWN": 1.0, **overrides}


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


@contextmanager
def counting_statements(engine: Engine) -> Iterator[list[str]]:
    """Collect every SQL statement the engine runs inside the block."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass
class Actor:
    """A registered user with their auth header (and company for employers)."""
    user: dict[str, Any]
    headers: dict[str, str]
    company: dict[str, Any] | None = None


def register(client, role: str) -> Actor:  # noqa: ANN001
    """Register a fresh user of ``role``."""
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post("/api/auth/register", json={"email": email, "password": "correct horse battery",
                                                        "full_name": f"Test {role}", "role": role})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return Actor(user=body["user"], headers={"Authorization": f"Bearer {body['token']}"})


def make_employer(client) -> Actor:  # noqa: ANN001
    """An employer with a company."""
    actor = register(client, "employer")
    slug = f"co-{uuid.uuid4().hex[:10]}"
    response = client.post("/api/companies", headers=actor.headers, json={
        "name": f"Company {slug}", "slug": slug, "industry": "Software", "location": "Berlin"})
    assert response.status_code == 201, response.get_json()
    actor.company = response.get_json()["company"]
    return actor


def post_job(client, employer: Actor, **fields: Any) -> dict[str, Any]:  # noqa: ANN001
    """Create a published job for ``employer``."""
    body = {"title": "Platform Engineer", "description": "Run PostgreSQL and Redis at scale.",
            "location": "Berlin", "employment_type": "full_time", "experience_level": "senior",
            "status": "published", **fields}
    response = client.post("/api/jobs", headers=employer.headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["job"]


@pytest.fixture
def employer(client) -> Actor:  # noqa: ANN001
    """An employer with a company."""
    return make_employer(client)


@pytest.fixture
def seeker(client) -> Actor:  # noqa: ANN001
    """A job seeker."""
    return register(client, "job_seeker")
