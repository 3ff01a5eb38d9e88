"""Migration 0003: users.token_version (existing accounts get version 0, so their tokens stay valid) and the
auth_failures table, whose primary key is its only index; the downgrade removes both."""

from __future__ import annotations

import secrets

import psycopg2
import pytest
from alembic import command

from talentsphere.config import migration_timeouts
from talentsphere.migrate import alembic_config, upgrade


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


@pytest.fixture
def at_0002(pg) -> str:  # noqa: ANN001
    """A database of the previous release, with one account in it."""
    url = pg.create_database(f"ts_mig3_{secrets.token_hex(4)}")
    upgrade(url, revision="0002", timeouts=migration_timeouts({}))
    _rows(url, "INSERT INTO users (email, password_hash, full_name, role) "
               "VALUES ('old@example.com', 'x', 'Old Account', 'job_seeker') RETURNING id")
    return url


def test_0003_gives_existing_accounts_version_0_and_adds_auth_failures_with_only_its_key(at_0002: str) -> None:
    upgrade(at_0002, timeouts=migration_timeouts({}))
    assert _rows(at_0002, "SELECT version_num FROM alembic_version") == [("0003",)]
    assert _rows(at_0002, "SELECT email, token_version FROM users") == [("old@example.com", 0)]
    # The previous release's INSERT, which does not name the column, still works during a rolling deploy.
    _rows(at_0002, "INSERT INTO users (email, password_hash, full_name, role) "
                   "VALUES ('during@example.com', 'x', 'During Deploy', 'employer') RETURNING token_version")
    columns = _rows(at_0002, "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                             "WHERE table_name = 'auth_failures' ORDER BY ordinal_position")
    assert columns == [("key", "character varying", "NO"), ("failures", "integer", "NO"),
                       ("window_started_at", "timestamp with time zone", "NO"),
                       ("locked_until", "timestamp with time zone", "YES")]
    assert _rows(at_0002, "SELECT indexname FROM pg_indexes WHERE tablename = 'auth_failures'") == [
        ("pk_auth_failures",)]


def test_0003_downgrade_removes_the_column_and_the_table(at_0002: str) -> None:
    upgrade(at_0002, timeouts=migration_timeouts({}))
    command.downgrade(alembic_config(at_0002), "0002")
    assert _rows(at_0002, "SELECT version_num FROM alembic_version") == [("0002",)]
    assert _rows(at_0002, "SELECT to_regclass('public.auth_failures')") == [(None,)]
    assert _rows(at_0002, "SELECT count(*) FROM information_schema.columns "
                          "WHERE table_name = 'users' AND column_name = 'token_version'") == [(0,)]
