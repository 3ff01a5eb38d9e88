"""Jobs: search and list, featured, detail, create/update/close with ownership, categories."""

from __future__ import annotations

import uuid

import pytest
from app_helpers import make_employer, post_job, register

from talentsphere.search import COUNT_PAGES_AHEAD


def test_list_returns_a_page_of_published_jobs_with_totals(client) -> None:  # noqa: ANN001
    body = client.get("/api/jobs?per_page=5").get_json()
    assert len(body["items"]) == 5
    # Tens of thousands match: the total counts the requested page and the next ones, flagged as a lower bound.
    assert body["total_is_lower_bound"] is True
    assert body["total"] == 5 * (1 + COUNT_PAGES_AHEAD)
    assert body["pages"] == -(-body["total"] // 5)
    assert body["next_cursor"]
    assert all(job["status"] == "published" for job in body["items"])
    dates = [job["posted_at"] for job in body["items"]]
    assert dates == sorted(dates, reverse=True)


def test_full_text_search_ranks_title_matches_first(client, employer) -> None:  # noqa: ANN001
    word = f"zyx{uuid.uuid4().hex[:8]}"
    in_title = post_job(client, employer, title=f"Engineer {word}", description="Generic description text.")
    in_body = post_job(client, employer, title="Engineer", description=f"Mentions {word} in the body only.")
    body = client.get(f"/api/jobs?q={word}").get_json()
    assert [job["id"] for job in body["items"]] == [in_title["id"], in_body["id"]]
    assert body["total"] == 2
    assert body["total_is_lower_bound"] is False
    assert body["next_cursor"] is None


def test_search_understands_web_search_syntax(client, employer) -> None:  # noqa: ANN001
    word = f"qwv{uuid.uuid4().hex[:8]}"
    keep = post_job(client, employer, title=f"{word} Python", description="Backend work with Flask.")
    post_job(client, employer, title=f"{word} Java", description="Backend work with Spring.")
    body = client.get(f"/api/jobs?q={word} -java").get_json()
    assert [job["id"] for job in body["items"]] == [keep["id"]]


@pytest.mark.parametrize("param, value, check", [
    ("employment_type", "contract", lambda j: j["employment_type"] == "contract"),
    ("experience_level", "lead", lambda j: j["experience_level"] == "lead"),
    ("remote", "true", lambda j: j["is_remote"] is True),
    ("remote", "false", lambda j: j["is_remote"] is False),
    ("location", "berl", lambda j: "berl" in j["location"].lower()),
    ("salary_min", "100000", lambda j: j["salary_max"] >= 100000),
    ("salary_max", "40000", lambda j: j["salary_min"] <= 40000),
])
def test_filters_return_only_matching_jobs(client, param: str, value: str, check) -> None:  # noqa: ANN001
    body = client.get(f"/api/jobs?{param}={value}&per_page=50").get_json()
    assert body["items"]
    assert all(check(job) for job in body["items"])


def test_category_and_company_filters(client) -> None:  # noqa: ANN001
    by_category = client.get("/api/jobs?category_id=2&per_page=20").get_json()
    assert by_category["items"]
    assert {job["category"]["id"] for job in by_category["items"]} == {2}
    company_id = by_category["items"][0]["company"]["id"]
    by_company = client.get(f"/api/jobs?company_id={company_id}&per_page=20").get_json()
    assert by_company["items"]
    assert {job["company"]["id"] for job in by_company["items"]} == {company_id}


@pytest.mark.parametrize("sort, key", [("salary", "salary_max"), ("views", "view_count")])
def test_sorts_order_by_the_requested_key(client, sort: str, key: str) -> None:  # noqa: ANN001
    items = client.get(f"/api/jobs?sort={sort}&per_page=30").get_json()["items"]
    values = [job[key] for job in items]
    assert values == sorted(values, reverse=True)


def test_per_page_is_capped(client) -> None:  # noqa: ANN001
    response = client.get("/api/jobs?per_page=101")
    assert response.status_code == 422
    assert "per_page" in response.get_json()["error"]["details"]


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=x", "page"), ("employment_type=forever", "employment_type"),
    ("remote=maybe", "remote"), ("salary_min=-5", "salary_min"), ("salary_max=lots", "salary_max"),
    ("category_id=0", "category_id"), ("sort=random", "sort"), (f"q={'a' * 201}", "q"),
    ("cursor=%25%25%25", "cursor"),
    # a well-formed newest cursor, but relevance pages by page number only
    ("sort=relevance&cursor=eyJzIjoibmV3ZXN0IiwiayI6WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxXX0", "cursor"),
])
def test_invalid_search_parameters_are_422_naming_the_field(client, query: str, field: str) -> None:  # noqa: ANN001
    response = client.get(f"/api/jobs?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_featured_lists_only_featured_published_jobs(client) -> None:  # noqa: ANN001
    items = client.get("/api/jobs/featured?limit=20").get_json()["items"]
    assert len(items) == 20
    assert all(job["is_featured"] and job["status"] == "published" for job in items)


def test_detail_shows_the_description_and_counts_a_view(app, client, employer) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    body = client.get(f"/api/jobs/{job['id']}").get_json()
    assert body["job"]["description"] == "Run PostgreSQL and Redis at scale."
    assert app.extensions["talentsphere.views"].pending()[job["id"]] == 1


def test_drafts_are_not_public(client, employer) -> None:  # noqa: ANN001
    draft = post_job(client, employer, status="draft")
    assert client.get(f"/api/jobs/{draft['id']}").status_code == 404


def test_unknown_jobs_are_404(client) -> None:  # noqa: ANN001
    assert client.get("/api/jobs/2147483647").get_json()["error"]["code"] == "not_found"


def test_employer_creates_updates_and_closes_a_job(client, employer) -> None:  # noqa: ANN001
    job = post_job(client, employer, salary_min=50000, salary_max=70000, category_id=1)
    assert job["company"]["id"] == employer.company["id"]
    assert job["category"]["id"] == 1
    updated = client.patch(f"/api/jobs/{job['id']}", headers=employer.headers, json={"title": "Staff Engineer"})
    assert updated.status_code == 200
    assert updated.get_json()["job"]["title"] == "Staff Engineer"
    closed = client.post(f"/api/jobs/{job['id']}/close", headers=employer.headers)
    assert closed.get_json()["job"]["status"] == "closed"
    again = client.post(f"/api/jobs/{job['id']}/close", headers=employer.headers)
    assert again.status_code == 409
    edit_closed = client.patch(f"/api/jobs/{job['id']}", headers=employer.headers, json={"title": "Other"})
    assert edit_closed.status_code == 409


def test_a_draft_gets_its_posting_date_when_published(client, employer) -> None:  # noqa: ANN001
    draft = post_job(client, employer, status="draft")
    assert draft["posted_at"] is None
    published = client.patch(f"/api/jobs/{draft['id']}", headers=employer.headers, json={"status": "published"})
    assert published.get_json()["job"]["posted_at"] is not None


@pytest.mark.parametrize("fields, field", [
    ({"salary_min": 90000, "salary_max": 50000}, "salary_min"),
    ({"category_id": 999999}, "category_id"),
    ({"expires_at": "2001-01-01T00:00:00+00:00"}, "expires_at"),
    ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ({"status": "closed"}, "status"),
    ({"employment_type": "gig"}, "employment_type"),
    ({"title": "ab"}, "title"),
    ({"salary_min": "50000"}, "salary_min"),
])
def test_invalid_job_fields_are_422_naming_the_field(client, employer, fields: dict, field: str) -> None:  # noqa: ANN001
    body = {"title": "Valid title", "description": "A valid description.", "location": "Berlin",
            "employment_type": "full_time", "experience_level": "mid", **fields}
    response = client.post("/api/jobs", headers=employer.headers, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_only_employers_post_jobs(client, seeker) -> None:  # noqa: ANN001
    response = client.post("/api/jobs", headers=seeker.headers, json={})
    assert response.status_code == 403


def test_an_employer_without_a_company_is_told_to_create_one(client) -> None:  # noqa: ANN001
    actor = register(client, "employer")
    response = client.post("/api/jobs", headers=actor.headers, json={})
    assert response.status_code == 403
    assert "POST /api/companies" in response.get_json()["error"]["message"]


def test_posting_needs_a_token(client) -> None:  # noqa: ANN001
    assert client.post("/api/jobs", json={}).status_code == 401


@pytest.mark.parametrize("method, suffix", [("patch", ""), ("post", "/close")])
def test_an_employer_cannot_touch_another_companys_job(client, employer, method: str, suffix: str) -> None:  # noqa: ANN001
    other = make_employer(client)
    job = post_job(client, other)
    call = getattr(client, method)
    response = call(f"/api/jobs/{job['id']}{suffix}", headers=employer.headers, json={"title": "Hijacked"})
    assert response.status_code == 403
    assert client.get(f"/api/jobs/{job['id']}").get_json()["job"]["title"] == "Platform Engineer"


def test_categories_are_listed_by_name(client) -> None:  # noqa: ANN001
    items = client.get("/api/categories").get_json()["items"]
    names = [category["name"] for category in items]
    assert "Engineering" in names
    assert names == sorted(names)
