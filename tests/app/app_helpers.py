"""Helpers shared by the app tests (a uniquely named module: several test folders have a conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

SEED_JOBS = int(os.environ.get("TS_TEST_SEED_JOBS", "100000"))
VENV_BIN = Path(sys.executable).parent


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


def app_config(app_env: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """Config overrides for create_app in tests."""
    return {"FLASK_ENV": "testing", "DATABASE_URL": app_env["DATABASE_URL"], "REDIS_URL": app_env["REDIS_URL"],
            "SECRET_KEY": app_env["SECRET_KEY"], "CACHE_KEY_PREFIX": "ts:", "PROXY_COUNT": 1,
            "REDIS_BREAKER_COOLDOWN": 1.0,
            # Every test client is 127.0.0.1 and the suite registers and logs in hundreds of times a minute:
            # the per-address limits are off here and tested with their own addresses (test_app_login_guard.py).
            "AUTH_ADDRESS_RATE": 0, "AUTH_ADDRESS_MAX_FAILURES": 0, **overrides}


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


PASSWORD = "correct horse battery"


def login(client, email: str, password: str = PASSWORD) -> Actor:  # noqa: ANN001
    """Log in; the account and its bearer header."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return Actor(user=body["user"], headers={"Authorization": f"Bearer {body['token']}"})


def register(client, role: str) -> Actor:  # noqa: ANN001
    """Register a fresh user of ``role`` and log in (registration answers no token: it must not tell
    whether the email had an account)."""
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                        "full_name": f"Test {role}", "role": role})
    assert response.status_code == 202, response.get_json()
    return login(client, email)


def make_employer(client, slug: str | None = None) -> Actor:  # noqa: ANN001
    """An employer with a company (``slug``, or a fresh one)."""
    actor = register(client, "employer")
    slug = slug or f"co-{uuid.uuid4().hex[:10]}"
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
