"""The console script: migrate, seed, optimize-db (38 indexes), flush-views, monitor."""

from __future__ import annotations

import json
import re
import secrets

import psycopg2
import pytest
from app_helpers import SEED_JOBS, Prepared, run_cli

from talentsphere.indexes import INDEXES


def test_migrate_applies_the_schema(prepared: Prepared) -> None:
    assert "migrations applied" in prepared.migrate.stdout


def test_seed_writes_the_requested_number_of_jobs(prepared: Prepared, database_url: str) -> None:
    assert f"seeded {SEED_JOBS} jobs" in prepared.seed.stdout
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE status = 'published'), "
                    "count(*) FILTER (WHERE is_featured) FROM jobs")
        total, published, featured = cur.fetchone()
    assert total >= SEED_JOBS
    assert 0.7 * SEED_JOBS < published < 0.95 * SEED_JOBS
    assert featured > 0


def test_seeding_takes_under_a_minute_per_100k_jobs(prepared: Prepared) -> None:
    # Measured ~9 s per 100k jobs on 2 cores; 1M jobs took 140 s with shared_buffers sized by the deploy.
    assert prepared.seed_seconds < 60 * SEED_JOBS / 100_000


def test_optimize_db_creates_38_indexes_on_a_fresh_database(prepared: Prepared) -> None:
    assert prepared.optimize_first.returncode == 0, prepared.optimize_first.stderr
    assert "indexes: 38 created, 0 present, 0 rebuilt" in prepared.optimize_first.stdout
    created = re.findall(r"^created: (\S+)$", prepared.optimize_first.stdout, re.M)
    assert sorted(created) == sorted(index.name for index in INDEXES)


def test_optimize_db_second_run_creates_nothing(prepared: Prepared) -> None:
    assert "indexes: 0 created, 38 present, 0 rebuilt" in prepared.optimize_second.stdout


def test_every_index_exists_and_is_valid(prepared: Prepared, database_url: str) -> None:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisvalid")
        valid = {row[0] for row in cur.fetchall()}
    assert {index.name for index in INDEXES} <= valid


def test_every_index_has_a_reason() -> None:
    assert all(len(index.reason) > 15 for index in INDEXES)


def test_optimize_db_rebuilds_an_index_left_invalid_by_a_failed_concurrent_build(
        prepared: Prepared, app_env: dict[str, str], database_url: str) -> None:
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP INDEX CONCURRENTLY ix_applications_status")
        # A unique build over duplicate statuses fails and leaves an INVALID index behind, as a crash would.
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_applications_status ON applications (status)")
        cur.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_applications_status'::regclass")
        assert cur.fetchone() == (False,)
        result = run_cli(app_env, "optimize-db")
        cur.execute("SELECT indisvalid, indisunique FROM pg_index "
                    "WHERE indexrelid = 'ix_applications_status'::regclass")
        assert cur.fetchone() == (True, False)
    conn.close()
    assert "rebuilt: ix_applications_status" in result.stdout
    assert "0 created, 37 present, 1 rebuilt" in result.stdout


def test_optimize_db_names_a_missing_extension_and_the_fix(pg, app_env: dict[str, str]) -> None:  # noqa: ANN001
    url = pg.create_database(f"ts_noext_{secrets.token_hex(3)}", extensions=())
    env = {**app_env, "DATABASE_URL": url}
    assert run_cli(env, "migrate").returncode == 0
    result = run_cli(env, "optimize-db")
    assert result.returncode == 1
    assert "pg_trgm" in result.stderr
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm" in result.stderr


def _jobs_fingerprint(url: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT title, description, location, employment_type, experience_level, salary_min, "
                    "salary_max, is_remote, status, is_featured, view_count, company_id, category_id "
                    "FROM jobs ORDER BY id")
        return cur.fetchall()


def test_seed_is_deterministic_for_the_same_seed(pg, app_env: dict[str, str]) -> None:  # noqa: ANN001
    urls = [pg.create_database(f"ts_seed_{secrets.token_hex(3)}") for _ in range(3)]
    for url, seed in zip(urls, ("3", "3", "4"), strict=True):
        env = {**app_env, "DATABASE_URL": url}
        assert run_cli(env, "migrate").returncode == 0
        assert run_cli(env, "seed", "--jobs", "400", "--seed", seed).returncode == 0
    first, same, other = (_jobs_fingerprint(url) for url in urls)
    assert len(first) == 400
    assert first == same
    assert first != other


def test_seed_on_a_database_with_jobs_does_nothing(prepared: Prepared, app_env: dict[str, str]) -> None:
    result = run_cli(app_env, "seed", "--jobs", "10")
    assert result.returncode == 0
    assert "seed skipped" in result.stdout


def test_seed_rejects_a_non_positive_job_count(app_env: dict[str, str]) -> None:
    result = run_cli(app_env, "seed", "--jobs", "0")
    assert result.returncode == 2
    assert "--jobs" in result.stderr


def test_monitor_json_reports_system_database_pool_and_redis(prepared: Prepared, app_env: dict[str, str]) -> None:
    result = run_cli(app_env, "monitor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["system"]["cpu_count"] >= 1
    assert 0 < report["system"]["memory_total_bytes"]
    assert 0 <= report["system"]["disk_percent"] <= 100
    assert "active" in report["database"]["connections_by_state"]
    assert 0 < report["database"]["cache_hit_ratio"] <= 1
    assert report["database"]["pg_stat_statements"] == "installed"
    assert report["database"]["top_statements"]
    assert report["pool"]["size"] == 10
    assert report["redis"]["available"] is True


def test_monitor_text_names_each_section(prepared: Prepared, app_env: dict[str, str]) -> None:
    result = run_cli(app_env, "monitor")
    assert result.returncode == 0, result.stderr
    for section in ("CPU", "Memory", "Disk", "DB", "Pool", "Redis", "Most used indexes"):
        assert section in result.stdout


def test_commands_refuse_to_run_in_production_without_a_secret_key(app_env: dict[str, str]) -> None:
    env = {key: value for key, value in app_env.items() if key != "SECRET_KEY"}
    result = run_cli(env, "migrate")
    assert result.returncode == 1
    assert "SECRET_KEY" in result.stderr
