"""Redis down or stalled: reads still answer 200 from PostgreSQL, quickly, and views are still counted."""

from __future__ import annotations

import time

import pytest
import redis
from app_helpers import post_job

READ_URLS = ["/api/jobs", "/api/jobs?q=python", "/api/jobs/featured", "/api/jobs/{published_job}", "/api/categories",
             "/api/companies", "/api/companies/company-2", "/health", "/metrics", "/api/openapi.json"]


@pytest.fixture
def redis_down(redis_server, app):  # noqa: ANN001, ANN201
    """Stop our Redis for the test, start it again afterwards."""
    if not redis_server.is_ours:
        pytest.skip("TS_TEST_REDIS_URL is an external server; this test needs to stop Redis")
    redis_server.halt()
    try:
        yield
    finally:
        redis_server.launch()
        app.extensions["talentsphere.cache"].breaker.reset()


@pytest.mark.parametrize("url", READ_URLS)
def test_every_read_endpoint_answers_200_with_redis_stopped(client, engine, redis_down, url: str) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        published_job = conn.exec_driver_sql("SELECT min(id) FROM jobs WHERE status = 'published'").scalar()
    assert client.get(url.format(published_job=published_job)).status_code == 200


def test_authenticated_reads_answer_200_with_redis_stopped(client, employer, seeker, redis_down) -> None:  # noqa: ANN001
    for url, actor in (("/api/employer/dashboard", employer), ("/api/applications", seeker),
                       ("/api/auth/me", seeker)):
        assert client.get(url, headers=actor.headers).status_code == 200


def test_writes_work_with_redis_stopped(client, employer, redis_down) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    assert client.get(f"/api/jobs/{job['id']}").status_code == 200


def test_ready_is_degraded_not_down_without_redis(client, redis_down) -> None:  # noqa: ANN001
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "degraded", "database": "ok", "redis": "unavailable",
                                   "release": client.application.config["RELEASE_ID"]}


def test_views_fall_back_to_a_direct_update_without_redis(client, employer, engine, redis_server, app) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    if not redis_server.is_ours:
        pytest.skip("needs to stop Redis")
    redis_server.halt()
    try:
        for _ in range(3):
            client.get(f"/api/jobs/{job['id']}")
    finally:
        redis_server.launch()
        app.extensions["talentsphere.cache"].breaker.reset()
    with engine.connect() as conn:
        views = conn.exec_driver_sql("SELECT view_count FROM jobs WHERE id = %s", (job["id"],)).scalar()
    assert views == 3


def test_a_stalled_redis_costs_one_timeout_then_the_breaker_skips_it(client, redis_server, app) -> None:  # noqa: ANN001
    admin = redis.Redis.from_url(redis_server.admin_url)
    client.get("/api/categories")  # connection established and healthy
    admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
    try:
        started = time.perf_counter()
        for _ in range(20):
            assert client.get("/api/categories").status_code == 200
        elapsed = time.perf_counter() - started
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        app.extensions["talentsphere.cache"].breaker.reset()
    without_breaker = 20 * 2 * app.config["REDIS_SOCKET_TIMEOUT"]  # 20 requests x 2 lookups x timeout = 10 s
    assert elapsed < without_breaker / 3
