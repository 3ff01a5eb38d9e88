"""Brute-force protection of login and registration (talentsphere/login_guard.py), against real Redis and
PostgreSQL: lockouts per account and per address with doubling backoff, the per-address attempt rate, all
answered 429 before any password is hashed, and the same counters in PostgreSQL while Redis is stopped.

Each test speaks from its own random client address (REMOTE_ADDR), so the counters of one test never meet
another's.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from app_helpers import app_config, counting_statements

from talentsphere import create_app
from talentsphere.api import auth as auth_api
from talentsphere.config import ConfigError, load_config

PASSWORD = "correct horse battery"
WRONG = "wrong password!"
# The settings every test starts from: the per-address limits off unless a test turns one on.
BASE = {"AUTH_MAX_FAILURES": 3, "AUTH_ADDRESS_MAX_FAILURES": 0, "AUTH_ADDRESS_RATE": 0,
        "AUTH_FAILURE_WINDOW": 900, "AUTH_LOCKOUT_SECONDS": 60, "AUTH_LOCKOUT_MAX_SECONDS": 3600}


def random_address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


class Client:
    """A test client speaking from one address."""

    def __init__(self, app: Any, address: str | None = None) -> None:
        self.app = app
        self.address = address or random_address()
        self.http = app.test_client()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.http.post(path, json=body, environ_base={"REMOTE_ADDR": self.address})

    def login(self, email: str, password: str) -> Any:
        return self.post("/api/auth/login", {"email": email, "password": password})

    def register(self, email: str | None = None) -> Any:
        return self.post("/api/auth/register", {"email": email or fresh_email(), "password": PASSWORD,
                                                "full_name": "Guard Test", "role": "job_seeker"})


def fresh_email() -> str:
    return f"guard-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
def make_app(prepared, app_env) -> Iterator[Callable[..., Any]]:  # noqa: ANN001
    """create_app with BASE and the test's AUTH_* settings (each app has its own guard)."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        application = create_app(app_config(app_env, **{**BASE, **settings}))
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions["talentsphere.db"].engine.dispose()


@pytest.fixture
def account(make_app) -> Callable[[Any], str]:  # noqa: ANN001
    """Register a fresh account through ``app`` (from an address of its own) and return its email."""
    def create(app: Any) -> str:
        email = fresh_email()
        response = Client(app).register(email)
        assert response.status_code in (201, 202), response.get_json()
        return email
    return create


@pytest.fixture
def verify_calls(monkeypatch) -> list[str]:  # noqa: ANN001
    """Every password verification the login endpoint makes (a spy on the function it calls)."""
    calls: list[str] = []
    real = auth_api.verify_password

    def spy(stored_hash: str, password: str) -> bool:
        calls.append(password)
        return real(stored_hash, password)

    monkeypatch.setattr(auth_api, "verify_password", spy)
    return calls


@pytest.fixture
def hash_calls(monkeypatch) -> list[str]:  # noqa: ANN001
    """Every password hash the registration endpoint computes."""
    calls: list[str] = []
    real = auth_api.hash_password

    def spy(password: str) -> str:
        calls.append(password)
        return real(password)

    monkeypatch.setattr(auth_api, "hash_password", spy)
    return calls


@pytest.fixture
def admin_redis(redis_server) -> redis.Redis:  # noqa: ANN001
    return redis.Redis.from_url(redis_server.admin_url)


@pytest.fixture
def redis_stopped(redis_server, make_app) -> Iterator[None]:  # noqa: ANN001
    """Our Redis stopped for the test (started again afterwards)."""
    if not redis_server.is_ours:
        pytest.skip("TS_TEST_REDIS_URL is an external server; this test needs to stop Redis")
    redis_server.halt()
    try:
        yield
    finally:
        redis_server.launch()


def assert_refused(response: Any, retry_after: int | None = None) -> None:
    """A 429 JSON answer with a Retry-After (``retry_after`` seconds when given)."""
    assert response.status_code == 429, response.get_json()
    assert response.is_json
    assert response.get_json()["error"]["code"] == "too_many_attempts"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Cache-Control"] == "no-store"  # the app's after-request headers are there too
    if retry_after is not None:
        assert response.headers["Retry-After"] == str(retry_after)


def pg_row(engine: Any, key: str) -> tuple[int, bool] | None:
    """(failures, locked now) of an auth_failures row, or None."""
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT failures, locked_until > now() FROM auth_failures WHERE key = %s",
                                   (key,)).one_or_none()
    return None if row is None else (row[0], bool(row[1]))


# --- per account -------------------------------------------------------------------------------------------

def test_failures_lock_the_account_and_the_right_password_is_refused_without_hashing(
        make_app, account, verify_calls) -> None:  # noqa: ANN001
    app = make_app()
    email = account(app)
    client = Client(app)
    for _ in range(3):
        assert client.login(email, WRONG).status_code == 401
    verify_calls.clear()
    refused = client.login(email, PASSWORD)
    assert_refused(refused, retry_after=60)
    assert "try again in 60 s" in refused.get_json()["error"]["message"]
    assert verify_calls == []  # no scrypt for a locked account
    # Another address is refused too: the lock is the account's, not the attacker's address's.
    assert_refused(Client(app).login(email, PASSWORD))
    assert verify_calls == []


def test_wrong_current_passwords_on_a_password_change_lock_the_account_like_failed_logins(
        make_app, account, verify_calls) -> None:  # noqa: ANN001
    app = make_app()
    email = account(app)
    client = Client(app)
    token = client.login(email, PASSWORD).get_json()["token"]

    def change(current: str) -> Any:
        return client.http.post("/api/auth/password", json={"current_password": current, "new_password": PASSWORD},
                                headers={"Authorization": f"Bearer {token}"},
                                environ_base={"REMOTE_ADDR": client.address})

    for _ in range(3):
        assert change(WRONG).status_code == 403
    verify_calls.clear()
    assert_refused(change(PASSWORD), retry_after=60)
    assert verify_calls == []  # a stolen token cannot keep guessing: no scrypt once locked
    assert_refused(Client(app).login(email, PASSWORD))  # the lock is the account's, for login too


def test_a_locked_account_is_refused_before_the_user_is_looked_up(make_app, account) -> None:  # noqa: ANN001
    app = make_app()
    email = account(app)
    client = Client(app)
    for _ in range(3):
        client.login(email, WRONG)
    with counting_statements(app.extensions["talentsphere.db"].engine) as statements:
        assert_refused(client.login(email, PASSWORD))
    assert statements == []


def test_the_lockout_doubles_with_each_further_failure_up_to_the_longest(make_app, account) -> None:  # noqa: ANN001
    app = make_app(AUTH_LOCKOUT_SECONDS=1, AUTH_LOCKOUT_MAX_SECONDS=2)
    email = account(app)
    client = Client(app)
    for _ in range(3):
        assert client.login(email, WRONG).status_code == 401
    assert_refused(client.login(email, WRONG), retry_after=1)  # refused: not counted
    time.sleep(1.1)
    assert client.login(email, WRONG).status_code == 401  # the lock is over; this failure locks for 2 s
    assert_refused(client.login(email, PASSWORD), retry_after=2)
    time.sleep(2.1)
    assert client.login(email, WRONG).status_code == 401  # 4 s, capped at 2
    assert_refused(client.login(email, PASSWORD), retry_after=2)
    time.sleep(2.1)
    assert client.login(email, PASSWORD).status_code == 200


def test_a_successful_login_forgets_the_accounts_failures(make_app, account) -> None:  # noqa: ANN001
    app = make_app()
    email = account(app)
    client = Client(app)
    for _ in range(2):
        assert client.login(email, WRONG).status_code == 401
    assert client.login(email, PASSWORD).status_code == 200
    for _ in range(2):
        assert client.login(email, WRONG).status_code == 401
    assert client.login(email, PASSWORD).status_code == 200  # 4 failures in all, never 3 in a row: no lock
    for _ in range(3):
        client.login(email, WRONG)
    assert_refused(client.login(email, PASSWORD))


def test_an_unknown_email_locks_exactly_like_a_known_one(make_app, account, verify_calls) -> None:  # noqa: ANN001
    app = make_app()
    known, unknown = account(app), fresh_email()

    def story(email: str) -> list[tuple[int, Any, str | None]]:
        client = Client(app)
        answers = [client.login(email, WRONG) for _ in range(4)] + [client.login(email, PASSWORD)]
        return [(a.status_code, a.get_json(), a.headers.get("Retry-After")) for a in answers]

    assert story(known) == story(unknown)
    assert [status for status, _, _ in story(fresh_email())] == [401, 401, 401, 429, 429]


# --- per address -------------------------------------------------------------------------------------------

def test_failures_from_one_address_lock_that_address_for_every_account(make_app, account, verify_calls) -> None:  # noqa: ANN001
    app = make_app(AUTH_ADDRESS_MAX_FAILURES=4)
    victim = account(app)
    attacker = Client(app)
    for _ in range(4):  # one guess per account: no account reaches its own limit
        assert attacker.login(fresh_email(), WRONG).status_code == 401
    verify_calls.clear()
    assert_refused(attacker.login(victim, PASSWORD), retry_after=60)
    assert_refused(attacker.register())
    assert verify_calls == []
    # The account itself is not locked: its owner, elsewhere, logs in.
    assert Client(app).login(victim, PASSWORD).status_code == 200


def test_attempts_per_address_are_limited_per_minute_before_hashing(make_app, account, hash_calls,
                                                                     verify_calls) -> None:  # noqa: ANN001
    app = make_app(AUTH_ADDRESS_RATE=4)
    email = account(app)
    client = Client(app)
    assert client.login(email, PASSWORD).status_code == 200
    assert client.register().status_code in (201, 202)
    assert client.login(email, WRONG).status_code == 401
    assert client.login(email, PASSWORD).status_code == 200  # the 4th attempt of this minute
    hash_calls.clear()
    verify_calls.clear()
    refused = client.login(email, PASSWORD)
    assert_refused(refused)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert_refused(client.register())
    assert hash_calls == [] and verify_calls == []
    assert Client(app).login(email, PASSWORD).status_code == 200  # another address has its own minute


def test_an_ipv6_client_counts_as_its_64(make_app) -> None:  # noqa: ANN001
    app = make_app(AUTH_ADDRESS_RATE=2)
    prefix = f"2001:db8:{secrets.randbelow(65536):x}:{secrets.randbelow(65536):x}"
    for host in ("::1", "::2"):
        assert Client(app, f"{prefix}{host}").login(fresh_email(), WRONG).status_code == 401
    assert_refused(Client(app, f"{prefix}::3").login(fresh_email(), WRONG))


def test_the_default_rate_lets_a_client_register_and_log_in_several_times(make_app, account) -> None:  # noqa: ANN001
    """What the e2e and bench clients do from one address stays well under the defaults."""
    defaults = {name: load_config({"FLASK_ENV": "testing"})[name] for name in BASE}
    app = make_app(**defaults)
    client = Client(app)
    for _ in range(5):
        email = fresh_email()
        assert client.register(email).status_code in (201, 202)
        assert client.login(email, PASSWORD).status_code == 200


# --- concurrency and Redis outages ------------------------------------------------------------------------

def concurrent_failures(app: Any, email: str, count: int, address: str) -> list[int]:
    """``count`` failed logins at once, one thread each, from one address."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def attempt() -> None:
        client = Client(app, address)
        barrier.wait()
        statuses.append(client.login(email, WRONG).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_failures_are_counted_exactly_in_redis(make_app, admin_redis) -> None:  # noqa: ANN001
    app = make_app(AUTH_MAX_FAILURES=1000, AUTH_ADDRESS_MAX_FAILURES=1000)
    email, address = fresh_email(), random_address()
    assert concurrent_failures(app, email, 16, address) == [401] * 16
    assert admin_redis.hget(f"ts:auth:account:{email}", "f") == b"16"
    assert admin_redis.hget(f"ts:auth:address:{address}", "f") == b"16"


def test_with_redis_stopped_the_counters_in_postgresql_still_lock(make_app, account, redis_stopped,
                                                                   verify_calls) -> None:  # noqa: ANN001
    app = make_app()
    engine = app.extensions["talentsphere.db"].engine
    email = fresh_email()
    client = Client(app)
    assert client.register(email).status_code in (201, 202)
    assert client.login(email, WRONG).status_code == 401
    assert client.login(email, PASSWORD).status_code == 200
    assert pg_row(engine, f"account:{email}") is None  # the success cleared it
    for _ in range(3):
        assert client.login(email, WRONG).status_code == 401
    assert pg_row(engine, f"account:{email}") == (3, True)
    verify_calls.clear()
    assert_refused(client.login(email, PASSWORD), retry_after=60)
    assert verify_calls == []


def test_with_redis_stopped_the_address_rate_is_kept_in_postgresql(make_app, redis_stopped, hash_calls) -> None:  # noqa: ANN001
    app = make_app(AUTH_ADDRESS_RATE=2)
    client = Client(app)
    assert client.login(fresh_email(), WRONG).status_code == 401
    assert client.register().status_code in (201, 202)
    hash_calls.clear()
    assert_refused(client.register())
    assert hash_calls == []


def test_with_redis_stopped_concurrent_failures_are_counted_exactly(make_app, redis_stopped) -> None:  # noqa: ANN001
    app = make_app(AUTH_MAX_FAILURES=1000, AUTH_ADDRESS_MAX_FAILURES=1000)
    engine = app.extensions["talentsphere.db"].engine
    email, address = fresh_email(), random_address()
    assert concurrent_failures(app, email, 16, address) == [401] * 16
    assert pg_row(engine, f"account:{email}") == (16, False)
    assert pg_row(engine, f"address:{address}") == (16, False)


def test_lockouts_are_counted_in_the_metrics(make_app, account) -> None:  # noqa: ANN001
    app = make_app()
    email = account(app)
    client = Client(app)
    before = app.test_client().get("/metrics").get_data(as_text=True)
    for _ in range(4):
        client.login(email, WRONG)
    after = app.test_client().get("/metrics").get_data(as_text=True)

    def value(text: str, sample: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(sample + " ")]
        return float(lines[0].split()[-1]) if lines else 0.0

    lockouts = 'talentsphere_auth_lockouts_total{scope="account"}'
    refused = 'talentsphere_auth_refused_total{reason="account"}'
    assert value(after, lockouts) - value(before, lockouts) == 1
    assert value(after, refused) - value(before, refused) == 1


@pytest.mark.parametrize("name, raw", [("AUTH_ADDRESS_RATE", "many"), ("AUTH_LOCKOUT_SECONDS", "-1")])
def test_a_malformed_setting_stops_startup_naming_it(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({"FLASK_ENV": "testing", name: raw})
