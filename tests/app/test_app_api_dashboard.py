"""The employer dashboard and health endpoints."""

from __future__ import annotations

import pytest
from app_helpers import app_config, make_employer, post_job, register
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from talentsphere import create_app
from talentsphere.api.employer import dashboard_stats
from talentsphere.models import ApplicationStatus


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


BUSY_JOBS = 20
BUSY_APPLICATIONS = 3000


@pytest.fixture
def busy_company(client, engine):  # noqa: ANN001, ANN201
    """An employer's company with BUSY_JOBS jobs (a tenth closed) and BUSY_APPLICATIONS applications, as the
    bench builds them: one per (job, seeker), statuses cycling, one second apart."""
    employer = make_employer(client)
    company_id = employer.company["id"]
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (title, description, location, employment_type, experience_level, status, view_count, "
            "posted_at, company_id, posted_by_id) SELECT 'Busy ' || g, 'A busy job.', 'Berlin', 'full_time', 'mid', "
            "(CASE WHEN g % 10 = 0 THEN 'closed' ELSE 'published' END)::job_status, g, now() - make_interval(mins => g), "
            ":company, :user FROM generate_series(1, :jobs) AS g"),
            {"company": company_id, "user": employer.user["id"], "jobs": BUSY_JOBS})
        conn.execute(text(
            "WITH j AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS r FROM jobs WHERE company_id = :company), "
            "s AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS r FROM users WHERE role = 'job_seeker') "
            "INSERT INTO applications (job_id, applicant_id, status, created_at) "
            "SELECT j.id, s.id, (ARRAY['submitted','reviewing','interview','offered','hired','rejected'])[1 + g % 6]"
            "::application_status, now() - make_interval(secs => g / 2) "
            "FROM generate_series(0, :applications - 1) AS g JOIN j ON j.r = (g * 7) % :jobs "
            "JOIN s ON s.r = g / :jobs"),
            {"company": company_id, "applications": BUSY_APPLICATIONS, "jobs": BUSY_JOBS})
    yield company_id
    # Other tests pick the company with the most applications of the seeded data: leave none behind.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE company_id = :company"), {"company": company_id})


def _plain_dashboard(engine, company_id: int) -> dict:  # noqa: ANN001
    """The dashboard's figures by the obvious joins over every application (what the figures must equal)."""
    with engine.connect() as conn:
        def rows(sql: str) -> list:
            return conn.execute(text(sql), {"company": company_id}).all()
        by_status = dict(rows("SELECT a.status::text, count(*) FROM applications a JOIN jobs j ON j.id = a.job_id "
                              "WHERE j.company_id = :company GROUP BY 1"))
        top = rows("SELECT j.id, j.title, count(a.id) FROM jobs j JOIN applications a ON a.job_id = j.id "
                   "WHERE j.company_id = :company GROUP BY j.id ORDER BY count(a.id) DESC, j.id LIMIT 5")
        recent = rows("SELECT a.id, j.id, j.title, u.full_name, a.status::text, a.created_at FROM applications a "
                      "JOIN jobs j ON j.id = a.job_id JOIN users u ON u.id = a.applicant_id "
                      "WHERE j.company_id = :company ORDER BY a.created_at DESC, a.id DESC LIMIT 10")
    return {"applications_by_status": {s.value: by_status.get(s.value, 0) for s in ApplicationStatus},
            "top_jobs": [{"job_id": i, "title": t, "applications": n} for i, t, n in top],
            "recent_applications": [{"application_id": a, "job_id": j, "job_title": t, "applicant_name": u,
                                     "status": s, "created_at": c.isoformat()} for a, j, t, u, s, c in recent]}


def test_a_busy_dashboard_equals_the_plain_joins(engine, busy_company) -> None:  # noqa: ANN001
    with Session(engine) as db:
        stats = dashboard_stats(db, busy_company)
    assert sum(stats["applications_by_status"].values()) == BUSY_APPLICATIONS
    assert {key: stats[key] for key in ("applications_by_status", "top_jobs", "recent_applications")} == \
        _plain_dashboard(engine, busy_company)


def test_no_dashboard_statement_spills_to_temp_files_even_with_the_least_work_mem(engine, busy_company) -> None:  # noqa: ANN001
    # 64kB (the minimum) holds a few hundred sorted rows: a statement that sorted or hashed every application
    # of the company would write temp files here, one that works per job does not.
    captured: list = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        captured.append((statement, parameters))

    with engine.connect() as conn:
        conn.exec_driver_sql("SET work_mem = '64kB'")
        event.listen(engine, "before_cursor_execute", record)
        try:
            dashboard_stats(Session(bind=conn), busy_company)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        plans = [conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters).scalar()[0]
                 for statement, parameters in captured]
        conn.rollback()
    assert len(plans) == 4
    assert [plan["Plan"].get("Temp Written Blocks", 0) for plan in plans] == [0, 0, 0, 0]
