"""Statement counts that do not grow with the page size, and EXPLAIN plans that use the indexes at 100k jobs."""

from __future__ import annotations

from typing import Any

import pytest
from app_helpers import SEED_JOBS, counting_statements, make_employer
from sqlalchemy import event

PAGE_SIZES = [1, 10, 50, 100]


def _count(client, engine, url: str, headers: dict | None = None) -> int:  # noqa: ANN001
    client.application.extensions["talentsphere.cache"].clear_all()
    with counting_statements(engine) as statements:
        assert client.get(url, headers=headers).status_code == 200
    return len(statements)


@pytest.mark.parametrize("url, expected", [
    ("/api/jobs?per_page={n}", 2),
    ("/api/jobs?q=senior%20python&per_page={n}", 2),
    ("/api/jobs?location=berlin&remote=false&sort=salary&per_page={n}", 2),
    ("/api/companies?per_page={n}", 2),
    ("/api/jobs/featured?limit={n}", 1),
])
def test_public_lists_run_a_constant_number_of_statements(client, engine, url: str, expected: int) -> None:  # noqa: ANN001
    counts = [_count(client, engine, url.format(n=min(n, 50) if "limit" in url else n)) for n in PAGE_SIZES]
    assert counts == [expected] * len(PAGE_SIZES)


@pytest.fixture
def busy_employer(client, engine):  # noqa: ANN001, ANN201
    """An employer who took over a seeded company (hundreds of jobs and applications)."""
    actor = make_employer(client)
    with engine.begin() as conn:
        company_id = conn.exec_driver_sql(
            "SELECT j.company_id FROM jobs j JOIN applications a ON a.job_id = j.id "
            "GROUP BY j.company_id ORDER BY count(*) DESC LIMIT 1").scalar()
        conn.exec_driver_sql("DELETE FROM companies WHERE id = %s", (actor.company["id"],))
        conn.exec_driver_sql("UPDATE companies SET owner_id = %s WHERE id = %s", (actor.user["id"], company_id))
    actor.company = {"id": company_id}
    return actor


def test_the_dashboard_runs_six_statements_for_a_large_company(client, engine, busy_employer) -> None:  # noqa: ANN001
    # token user + company + jobs by status + applications by status + top jobs + recent applications
    body = client.get("/api/employer/dashboard", headers=busy_employer.headers).get_json()
    assert sum(body["jobs_by_status"].values()) > 100
    assert _count(client, engine, "/api/employer/dashboard", busy_employer.headers) == 6


def test_an_employers_application_list_is_constant(client, engine, busy_employer) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        job_id = conn.exec_driver_sql(
            "SELECT job_id FROM applications a JOIN jobs j ON j.id = a.job_id WHERE j.company_id = %s "
            "GROUP BY job_id ORDER BY count(*) DESC LIMIT 1", (busy_employer.company["id"],)).scalar()
    counts = {_count(client, engine, f"/api/jobs/{job_id}/applications?per_page={n}", busy_employer.headers)
              for n in PAGE_SIZES}
    assert counts == {4}  # token user + job with company + count + page


def _index_names(plan: Any) -> set[str]:
    if isinstance(plan, dict):
        found = {plan["Index Name"]} if "Index Name" in plan else set()
        return found.union(*(_index_names(value) for value in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_index_names(item) for item in plan))
    return set()


def _explain(client, engine, url: str, headers: dict | None = None) -> list[set[str]]:  # noqa: ANN001
    """Index names in the plan of each SELECT the endpoint runs (EXPLAIN of the very statements)."""
    client.application.extensions["talentsphere.cache"].clear_all()
    captured: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url, headers=headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        return [_index_names(conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar())
                for statement, parameters in captured if statement.lstrip().upper().startswith("SELECT")]


def test_the_database_is_big_enough_for_plans_to_matter(engine) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM jobs").scalar() >= SEED_JOBS >= 100_000


@pytest.mark.parametrize("url, index", [
    ("/api/jobs?q=python%20developer", "ix_jobs_search_vector"),
    ("/api/jobs", "ix_jobs_published_posted"),
    ("/api/jobs/featured", "ix_jobs_featured_posted"),
    ("/api/jobs?remote=true", "ix_jobs_remote_posted"),
    # A location few jobs have is found through the trigram index; a common one (berlin: 1 in 16) is read in
    # newest order, where the first matches come sooner than a bitmap of all of them.
    ("/api/jobs?location=zzqx-nowhere", "ix_jobs_location_trgm"),
    ("/api/jobs?location=berl", "ix_jobs_published_posted"),
    ("/api/jobs?sort=salary", "ix_jobs_salary_sort"),
    # Type and level together: their matches read newest first from one index, whatever else filters them.
    ("/api/jobs?employment_type=full_time&experience_level=senior", "ix_jobs_type_level_posted"),
    ("/api/jobs?q=engineer&location=berlin&employment_type=full_time&experience_level=senior&sort=newest",
     "ix_jobs_type_level_posted"),
    ("/api/companies?industry=Finance", "ix_companies_industry_name"),
])
def test_public_queries_use_their_index(client, engine, url: str, index: str) -> None:  # noqa: ANN001
    assert index in set().union(*_explain(client, engine, url))


def test_company_jobs_use_the_company_index(client, engine) -> None:  # noqa: ANN001
    plans = _explain(client, engine, "/api/companies/company-9")
    assert all("ix_jobs_company_published" in plan for plan in plans[1:])


def test_every_dashboard_statement_uses_an_index(client, engine, busy_employer) -> None:  # noqa: ANN001
    plans = _explain(client, engine, "/api/employer/dashboard", busy_employer.headers)
    assert len(plans) == 6
    assert all(plans)
    figures = plans[2:]
    assert all("ix_jobs_company_status" in plan for plan in figures)
    assert "ix_applications_job_status" in figures[1], plans
