"""View counts: buffered in Redis, flushed in one UPDATE, nothing lost when a flush fails."""

from __future__ import annotations

import pytest
import redis
from app_helpers import counting_statements, post_job, run_cli
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from talentsphere.view_counts import ViewCounter


def _views(engine, job_id: int) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT view_count FROM jobs WHERE id = %s", (job_id,)).scalar()


@pytest.fixture
def counter(app) -> ViewCounter:  # noqa: ANN001
    """The app's view counter, with the buffer flushed before the test."""
    views = app.extensions["talentsphere.views"]
    views.flush()
    return views


def test_views_are_buffered_not_written_per_request(client, employer, engine, counter) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    with counting_statements(engine) as statements:
        for _ in range(3):
            client.get(f"/api/jobs/{job['id']}")
    assert not any(s.lstrip().upper().startswith("UPDATE") for s in statements)
    assert counter.pending()[job["id"]] == 3
    assert _views(engine, job["id"]) == 0


def test_a_flush_writes_all_jobs_in_one_statement(client, employer, engine, counter) -> None:  # noqa: ANN001
    jobs = [post_job(client, employer) for _ in range(25)]
    for index, job in enumerate(jobs):
        for _ in range(index % 3 + 1):
            client.get(f"/api/jobs/{job['id']}")
    with counting_statements(engine) as statements:
        result = counter.flush()
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    # The only other statement takes the flush lock and reads the transaction id (the batch's claim).
    assert [s.split("(")[0] for s in statements if s not in updates] == ["SELECT pg_try_advisory_xact_lock"]
    assert (result.jobs, result.views) == (25, sum(i % 3 + 1 for i in range(25)))
    assert [_views(engine, job["id"]) for job in jobs] == [i % 3 + 1 for i in range(25)]
    assert counter.pending() == {}


def test_a_failed_flush_loses_no_views(client, employer, engine, counter, app) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    for _ in range(4):
        client.get(f"/api/jobs/{job['id']}")
    dead_database = create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none",
                                  connect_args={"connect_timeout": 1})
    broken = ViewCounter(app.extensions["talentsphere.cache"], dead_database)
    with pytest.raises(OperationalError):
        broken.flush()
    client.get(f"/api/jobs/{job['id']}")  # a view arriving while the failed batch waits
    assert counter.pending()[job["id"]] == 5
    counter.flush()
    assert _views(engine, job["id"]) == 5
    assert counter.pending() == {}


def test_flush_views_command_writes_the_buffer(client, employer, engine, app_env, counter) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    client.get(f"/api/jobs/{job['id']}")
    client.get(f"/api/jobs/{job['id']}")
    result = run_cli(app_env, "flush-views")
    assert result.returncode == 0, result.stderr
    assert "flushed 2 views of 1 jobs" in result.stdout
    assert _views(engine, job["id"]) == 2


def test_flush_views_command_fails_clearly_when_redis_is_unreachable(app_env) -> None:  # noqa: ANN001
    env = {**app_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = run_cli(env, "flush-views")
    assert result.returncode == 1
    assert "buffered views kept" in result.stderr


def test_the_buffer_lives_under_the_key_prefix(client, employer, redis_server, counter) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    client.get(f"/api/jobs/{job['id']}")
    admin = redis.Redis.from_url(redis_server.admin_url)
    assert admin.hget("ts:views:buffer", str(job["id"])) == b"1"
