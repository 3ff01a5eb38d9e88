"""Job search at scale: bounded totals (flagged when they are a lower bound), keyset cursors that return the
same rows as offset pages, relevance within the candidate set, and plans that read a page, not every match.

Correctness is checked on one company's few hundred jobs (inserted with ties in every sort key) against
plain SQL that counts and sorts every match; plans are checked on the session's seeded database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from app_helpers import make_employer
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from talentsphere import search
from talentsphere.search import COUNT_PAGES_AHEAD, JobFilters, search_jobs

JOBS = 300
WORD = "zq" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def company(app) -> Iterator[dict[str, Any]]:  # noqa: ANN001
    """A company with JOBS published jobs: posting dates, salaries and views repeat (ties), some salaries are
    missing, and every job mentions WORD (in the title of every seventh job, so ranks differ)."""
    client = app.test_client()
    employer = make_employer(client)
    company_id = employer.company["id"]
    engine = app.extensions["talentsphere.db"].engine
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (title, description, location, employment_type, experience_level, salary_min, "
            "salary_max, is_remote, status, is_featured, view_count, posted_at, expires_at, company_id, "
            "posted_by_id) "
            "SELECT CASE WHEN g % 7 = 0 THEN :word || ' Engineer ' || g ELSE 'Engineer ' || g END, "
            "'A job that mentions ' || :word || ' in its description, number ' || g || '.', 'Berlin', "
            "'full_time', 'mid', NULL, CASE WHEN g % 11 = 0 THEN NULL ELSE 40000 + (g % 13) * 1000 END, "
            "false, 'published', false, g % 17, now() - make_interval(mins => g / 3), now() + interval '30 days', "
            ":company, :user FROM generate_series(1, :jobs) AS g"),
            {"word": WORD, "company": company_id, "user": employer.user["id"], "jobs": JOBS})
    yield {"id": company_id}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE company_id = :company"), {"company": company_id})


def _ids(result: dict[str, Any]) -> list[int]:
    return [job["id"] for job in result["items"]]


def _reference(engine: Engine, company_id: int, order: str) -> list[int]:
    """Every match of the company, sorted in SQL: what a full count and a full sort return."""
    with engine.connect() as conn:
        return list(conn.scalars(text(
            f"SELECT id FROM jobs WHERE company_id = :company AND status = 'published' ORDER BY {order}"),
            {"company": company_id}))


ORDERS = {"newest": "posted_at DESC, id DESC", "salary": "salary_max DESC NULLS LAST, id DESC",
          "views": "view_count DESC, id DESC"}


def test_total_is_exact_when_the_matches_end_within_the_counted_pages(engine, company) -> None:  # noqa: ANN001
    per_page = JOBS // (1 + COUNT_PAGES_AHEAD)
    with Session(engine) as db:
        result = search_jobs(db, JobFilters(company_id=company["id"], per_page=per_page))
    assert result["total"] == JOBS
    assert result["total_is_lower_bound"] is False
    assert result["pages"] == -(-JOBS // per_page)


def test_total_beyond_the_counted_pages_is_a_flagged_lower_bound(engine, company) -> None:  # noqa: ANN001
    with Session(engine) as db:
        first = search_jobs(db, JobFilters(company_id=company["id"], per_page=20))
        third = search_jobs(db, JobFilters(company_id=company["id"], per_page=20, page=3))
    assert first["total_is_lower_bound"] is True
    assert first["total"] == 20 * (1 + COUNT_PAGES_AHEAD) < JOBS
    assert first["pages"] == 1 + COUNT_PAGES_AHEAD
    # The window moves with the page: page 3 still knows of the pages after it.
    assert third["total"] == 20 * (3 + COUNT_PAGES_AHEAD) and third["total_is_lower_bound"] is True


def test_the_last_page_knows_the_exact_total(engine, company) -> None:  # noqa: ANN001
    with Session(engine) as db:
        last = search_jobs(db, JobFilters(company_id=company["id"], per_page=20, page=JOBS // 20))
    assert last["total"] == JOBS and last["total_is_lower_bound"] is False
    assert last["next_cursor"] is None


@pytest.mark.parametrize("sort", ["newest", "salary", "views"])
def test_cursor_pages_return_the_same_rows_as_offset_pages(engine, company, sort: str) -> None:  # noqa: ANN001
    per_page = 23  # does not divide JOBS: the last page is short
    expected = _reference(engine, company["id"], ORDERS[sort])
    by_offset, by_cursor, cursor = [], [], None
    with Session(engine) as db:
        for page in range(1, -(-JOBS // per_page) + 1):
            by_offset += _ids(search_jobs(db, JobFilters(company_id=company["id"], sort=sort, page=page,
                                                         per_page=per_page)))
        while True:
            result = search_jobs(db, JobFilters(company_id=company["id"], sort=sort, per_page=per_page,
                                                cursor=cursor))
            by_cursor += _ids(result)
            cursor = result["next_cursor"]
            if cursor is None:
                break
    assert by_offset == expected
    assert by_cursor == expected


def test_a_cursor_continues_from_any_offset_page(engine, company) -> None:  # noqa: ANN001
    with Session(engine) as db:
        fourth = search_jobs(db, JobFilters(company_id=company["id"], sort="salary", page=4, per_page=20))
        fifth = search_jobs(db, JobFilters(company_id=company["id"], sort="salary", page=5, per_page=20))
        after = search_jobs(db, JobFilters(company_id=company["id"], sort="salary", per_page=20,
                                           cursor=fourth["next_cursor"]))
    assert _ids(after) == _ids(fifth)


def test_relevance_ranks_the_newest_candidates_then_lists_older_matches_newest_first(
        engine, company, monkeypatch) -> None:  # noqa: ANN001
    candidates = 50
    monkeypatch.setattr(search, "RANK_CANDIDATES", candidates)
    with engine.connect() as conn:
        ranked = conn.execute(text(
            "SELECT id, ts_rank(search_vector, websearch_to_tsquery('english', :q)) AS rank FROM jobs "
            "WHERE company_id = :company AND status = 'published' "
            "AND search_vector @@ websearch_to_tsquery('english', :q) ORDER BY posted_at DESC, id DESC"),
            {"q": WORD, "company": company["id"]}).all()
    newest = [row.id for row in ranked]
    within = [row.id for row in sorted(ranked[:candidates], key=lambda row: -row.rank)]
    expected = within + newest[candidates:]
    assert len(set(expected)) == JOBS
    got: list[int] = []
    with Session(engine) as db:
        for page in range(1, JOBS // 30 + 1):
            result = search_jobs(db, JobFilters(q=WORD, company_id=company["id"], sort="relevance", page=page,
                                                per_page=30))
            assert result["next_cursor"] is None  # relevance pages by page number only
            got += _ids(result)
    assert got == expected
    # The ranking did reorder the candidates: title matches (every seventh job) first.
    assert within != newest[:candidates]
    assert all(job_id in {row.id for row in ranked if WORD in _title(engine, row.id)} for job_id in within[:5])


def _title(engine: Engine, job_id: int) -> str:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT title FROM jobs WHERE id = :id"), {"id": job_id})


def test_with_fewer_matches_than_candidates_relevance_is_the_full_ranking(engine, company) -> None:  # noqa: ANN001
    salary_min = 46000  # about half of the company's jobs
    with engine.connect() as conn:
        expected = list(conn.scalars(text(
            "SELECT id FROM jobs WHERE company_id = :company AND status = 'published' AND salary_max >= :salary "
            "AND search_vector @@ websearch_to_tsquery('english', :q) "
            "ORDER BY ts_rank(search_vector, websearch_to_tsquery('english', :q)) DESC, posted_at DESC, id DESC"),
            {"q": WORD, "company": company["id"], "salary": salary_min}))
    assert 0 < len(expected) <= search.RANK_CANDIDATES
    with Session(engine) as db:
        got = []
        for page in range(1, JOBS // 50 + 1):
            got += _ids(search_jobs(db, JobFilters(q=WORD, company_id=company["id"], salary_min=Decimal(salary_min),
                                                   sort="relevance", page=page, per_page=50)))
    assert got == expected


def test_the_api_flags_the_bound_and_hands_out_a_cursor(client, company) -> None:  # noqa: ANN001
    body = client.get(f"/api/jobs?company_id={company['id']}&per_page=10").get_json()
    assert body["total_is_lower_bound"] is True
    assert body["total"] == 10 * (1 + COUNT_PAGES_AHEAD)
    following = client.get(f"/api/jobs?company_id={company['id']}&per_page=10&cursor={body['next_cursor']}")
    second = client.get(f"/api/jobs?company_id={company['id']}&per_page=10&page=2").get_json()
    assert _ids(following.get_json()) == _ids(second)


@pytest.mark.parametrize("query", [
    "cursor=not-a-cursor",
    "cursor={salary_cursor}&sort=newest",
    "cursor={salary_cursor}&q=engineer",  # with q the default sort is relevance, which has no cursor
])
def test_cursors_that_cannot_continue_the_search_are_422(client, company, query: str) -> None:  # noqa: ANN001
    salary_cursor = client.get(f"/api/jobs?company_id={company['id']}&sort=salary&per_page=5").get_json()[
        "next_cursor"]
    response = client.get(f"/api/jobs?company_id={company['id']}&" + query.format(salary_cursor=salary_cursor))
    assert response.status_code == 422
    assert "cursor" in response.get_json()["error"]["details"]


def _plans(engine: Engine, filters: JobFilters) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, FORMAT JSON) of each statement search_jobs runs for ``filters``."""
    captured: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as db:
            search_jobs(db, filters)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        return [conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters).scalar()[0]["Plan"]
                for statement, parameters in captured]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


@pytest.mark.parametrize("filters", [
    JobFilters(),
    JobFilters(sort="salary"),
    JobFilters(q="engineer"),
    JobFilters(employment_type="contract", experience_level="senior", salary_min=Decimal(100000), sort="salary"),
    JobFilters(q="engineer", location="berlin", employment_type="full_time", experience_level="senior"),
], ids=["newest", "salary", "fulltext", "filters", "fulltext+filters"])
def test_no_statement_counts_or_sorts_every_match(engine, filters: JobFilters) -> None:  # noqa: ANN001
    plans = _plans(engine, filters)
    assert len(plans) == 2
    window = filters.per_page * (1 + COUNT_PAGES_AHEAD) + 1
    ids = plans[0]
    assert ids["Node Type"] == "Limit" and ids["Actual Rows"] <= window
    # Every match of these searches is thousands of rows: nothing below the LIMIT may have collected them all.
    for node in _nodes(ids):
        assert "Aggregate" not in node["Node Type"]
        if node["Node Type"] == "Sort":
            assert node["Sort Method"] == "top-N heapsort" or node["Actual Rows"] <= window
