"""The employer dashboard and health endpoints."""

from __future__ import annotations

import pytest
from app_helpers import app_config, post_job, register

from talentsphere import create_app


def test_dashboard_counts_jobs_applications_and_views(client, employer) -> None:  # noqa: ANN001
    jobs = [post_job(client, employer) for _ in range(3)]
    post_job(client, employer, status="draft")
    client.post(f"/api/jobs/{jobs[2]['id']}/close", headers=employer.headers)
    seekers = [register(client, "job_seeker") for _ in range(3)]
    for seeker in seekers:
        client.post(f"/api/jobs/{jobs[0]['id']}/applications", headers=seeker.headers, json={})
    client.post(f"/api/jobs/{jobs[1]['id']}/applications", headers=seekers[0].headers, json={})
    body = client.get("/api/employer/dashboard", headers=employer.headers).get_json()
    assert body["jobs_by_status"] == {"draft": 1, "published": 2, "closed": 1}
    assert body["applications_by_status"]["submitted"] == 4
    assert [(top["job_id"], top["applications"]) for top in body["top_jobs"]] == [(jobs[0]["id"], 3),
                                                                                   (jobs[1]["id"], 1)]
    assert len(body["recent_applications"]) == 4
    assert body["recent_applications"][0]["applicant_name"] == "Test job_seeker"


def test_dashboard_is_for_employers_with_a_company(client, seeker) -> None:  # noqa: ANN001
    assert client.get("/api/employer/dashboard", headers=seeker.headers).status_code == 403
    assert client.get("/api/employer/dashboard").status_code == 401
    companyless = register(client, "employer")
    assert client.get("/api/employer/dashboard", headers=companyless.headers).status_code == 403


def test_health_is_ok(client) -> None:  # noqa: ANN001
    assert client.get("/health").get_json() == {"status": "ok", "release": client.application.config["RELEASE_ID"]}


def test_ready_reports_database_and_redis(client) -> None:  # noqa: ANN001
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok",
                                   "release": client.application.config["RELEASE_ID"]}


def test_metrics_expose_requests_cache_pool_and_slow_queries(client) -> None:  # noqa: ANN001
    client.get("/api/categories")
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("talentsphere_http_requests_total", "talentsphere_http_request_duration_seconds_bucket",
                 "talentsphere_cache_misses_total", "talentsphere_db_pool_checked_out",
                 "talentsphere_slow_queries_total", "talentsphere_db_statements_total"):
        assert name in text
    assert 'endpoint="/api/categories"' in text


@pytest.fixture
def app_without_database(app_env):  # noqa: ANN001, ANN201
    """The app pointed at a port where no PostgreSQL listens."""
    application = create_app(app_config(app_env, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    yield application
    application.extensions["talentsphere.db"].engine.dispose()


def test_ready_is_503_without_the_database(app_without_database) -> None:  # noqa: ANN001
    response = app_without_database.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unavailable", "redis": "ok",
                                   "release": app_without_database.config["RELEASE_ID"]}


def test_api_reads_without_the_database_are_json_503(app_without_database) -> None:  # noqa: ANN001
    client = app_without_database.test_client()
    client.application.extensions["talentsphere.cache"].clear_all()
    response = client.get("/api/jobs?q=unreachable-database")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert client.get("/health").status_code == 200
