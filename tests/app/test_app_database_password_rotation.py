"""The app's PostgreSQL password rotated under it: DATABASE_PASSWORD_FALLBACK keeps every connection working.

PostgreSQL keeps one password per role. While a rotation switches the role to its new password, a host whose
DATABASE_URL still holds the old one connects with the fallback (the new one), and a host already moved to the
new one keeps the old as its fallback until the role switches. A real PostgreSQL with SCRAM logins; the role
is one of this module's own (a member of the app role, so it reads the seeded tables).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from app_helpers import app_config
from app_services import PostgresServer, with_credentials
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.engine import make_url

from talentsphere import create_app
from talentsphere import db as db_module
from talentsphere.config import load_config


@dataclass
class RotatingRole:
    server: PostgresServer
    name: str
    database: str

    def set_password(self, password: str) -> None:
        self.server.admin(f"ALTER ROLE {self.name} PASSWORD '{password}'")

    def url(self, password: str) -> str:
        return with_credentials(self.server.admin_url, self.name, password, path=f"/{self.database}")


@pytest.fixture
def role(pg: PostgresServer, database_url: str, prepared: object) -> Iterator[RotatingRole]:
    name = f"ts_rotation_{secrets.token_hex(4)}"
    pg.admin(f"CREATE ROLE {name} LOGIN IN ROLE {pg.app_user} PASSWORD 'unset-{secrets.token_hex(8)}'")
    try:
        yield RotatingRole(pg, name, make_url(database_url).database)
    finally:
        pg.admin(f"DROP ROLE IF EXISTS {name}")


def engine_for(url: str, fallback: str = "") -> tuple[Engine, db_module.DatabaseBreaker]:
    config = load_config({}, {"FLASK_ENV": "testing", "DATABASE_URL": url, "DATABASE_PASSWORD_FALLBACK": fallback})
    breaker = db_module.DatabaseBreaker(0)
    return db_module.make_engine(config, breaker=breaker), breaker


def fresh_connection_works(engine: Engine) -> bool:
    engine.dispose()  # a new connection, logged in now, not one the pool kept from before the switch
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM jobs")).scalar_one() > 0


def test_a_host_that_still_leads_with_the_old_password_connects_with_the_new_fallback(role: RotatingRole) -> None:
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    role.set_password(old)
    engine, breaker = engine_for(role.url(old), fallback=new)
    try:
        assert fresh_connection_works(engine)
        role.set_password(new)  # the deploy switches the role while this host still has the old env
        assert fresh_connection_works(engine)
        assert fresh_connection_works(engine)
        assert not breaker.is_open
    finally:
        engine.dispose()


def test_a_host_already_on_the_new_password_keeps_connecting_until_the_role_switches(role: RotatingRole) -> None:
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    role.set_password(old)
    engine, breaker = engine_for(role.url(new), fallback=old)
    try:
        assert fresh_connection_works(engine)  # the role still has the old password: the fallback logs in
        role.set_password(new)
        assert fresh_connection_works(engine)  # now the first choice again
        assert not breaker.is_open
    finally:
        engine.dispose()


def test_without_a_fallback_the_switch_refuses_the_old_password(role: RotatingRole) -> None:
    """What the fallback prevents: the host with the old password loses the database at the switch."""
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    role.set_password(old)
    engine, breaker = engine_for(role.url(old))
    try:
        assert fresh_connection_works(engine)
        role.set_password(new)
        with pytest.raises(OperationalError, match="password authentication failed"):
            fresh_connection_works(engine)
        assert breaker.is_open
    finally:
        engine.dispose()


def test_when_neither_password_logs_in_the_refusal_reaches_the_breaker(role: RotatingRole) -> None:
    role.set_password(secrets.token_urlsafe(24))
    engine, breaker = engine_for(role.url(secrets.token_urlsafe(24)), fallback=secrets.token_urlsafe(24))
    try:
        with pytest.raises(OperationalError, match="password authentication failed"):
            fresh_connection_works(engine)
        assert breaker.is_open
    finally:
        engine.dispose()


def test_a_failure_other_than_the_password_is_not_retried_with_the_fallback(role: RotatingRole) -> None:
    """An unreachable server costs one connect timeout, not two: only a refused password tries the other."""
    old = secrets.token_urlsafe(24)
    role.set_password(old)
    url = make_url(role.url(old)).set(database=f"missing_{secrets.token_hex(4)}")
    attempts: list[str] = []

    class CountingDialect:
        def __init__(self, dialect: object) -> None:
            self.dialect = dialect

        def connect(self, *cargs: object, **cparams: object) -> object:
            attempts.append(str(cparams["password"]))
            return self.dialect.connect(*cargs, **cparams)  # type: ignore[attr-defined]

    engine, _ = engine_for(url.render_as_string(hide_password=False), fallback=secrets.token_urlsafe(24))
    try:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        with pytest.raises(Exception, match="does not exist"):
            db_module.PasswordChoice(secrets.token_urlsafe(24)).connect(CountingDialect(engine.dialect), cargs,
                                                                        cparams)
        assert attempts == [old]
    finally:
        engine.dispose()


def test_the_api_keeps_answering_from_the_database_across_the_switch(role: RotatingRole, app_env: dict) -> None:
    old, new = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    role.set_password(old)
    application = create_app(app_config(app_env, DATABASE_URL=role.url(old), DATABASE_PASSWORD_FALLBACK=new))
    engine = application.extensions["talentsphere.db"].engine
    try:
        client = application.test_client()
        assert client.get("/api/companies").status_code == 200  # not cached: read from PostgreSQL
        role.set_password(new)
        engine.dispose()
        assert [client.get("/api/companies").status_code for _ in range(3)] == [200, 200, 200]
    finally:
        engine.dispose()


def test_pgbouncers_wording_of_a_refused_password_moves_on_to_the_fallback_too() -> None:
    # Through PgBouncer (scram-sha-256, auth_query) a wrong password reads "SASL authentication failed"
    # (seen with Debian's PgBouncer 1.18 in tests/unit/test_pgbouncer_role.py), not PostgreSQL's wording.
    refused = 'connection to server at "10.0.0.10", port 6432 failed: FATAL:  SASL authentication failed'
    assert db_module.password_refused(Exception(refused))
    assert not db_module.password_refused(Exception("could not connect to server: Connection refused"))
