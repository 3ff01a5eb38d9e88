"""Companies: list with filters, create, profile by slug with open jobs."""

from __future__ import annotations

import pytest
from app_helpers import post_job, register


def test_companies_filter_by_industry(client) -> None:  # noqa: ANN001
    body = client.get("/api/companies?industry=Finance&per_page=50").get_json()
    assert body["total"] > 0
    assert {company["industry"] for company in body["items"]} == {"Finance"}


@pytest.mark.parametrize("verified", ["true", "false"])
def test_companies_filter_by_verification(client, verified: str) -> None:  # noqa: ANN001
    items = client.get(f"/api/companies?verified={verified}&per_page=50").get_json()["items"]
    assert items
    assert {company["is_verified"] for company in items} == {verified == "true"}


def test_profile_shows_the_company_and_only_its_open_jobs(client, employer) -> None:  # noqa: ANN001
    open_job = post_job(client, employer)
    closed = post_job(client, employer)
    client.post(f"/api/jobs/{closed['id']}/close", headers=employer.headers)
    post_job(client, employer, status="draft")
    body = client.get(f"/api/companies/{employer.company['slug']}").get_json()
    assert body["company"]["id"] == employer.company["id"]
    assert [job["id"] for job in body["jobs"]] == [open_job["id"]]
    assert body["open_jobs_count"] == 1


@pytest.mark.parametrize("slug", ["no-such-company", "UPPER", "x" * 150])
def test_unknown_or_malformed_slugs_are_404(client, slug: str) -> None:  # noqa: ANN001
    assert client.get(f"/api/companies/{slug}").status_code == 404


def test_an_employer_owns_one_company_and_slugs_are_unique(client, employer) -> None:  # noqa: ANN001
    second = client.post("/api/companies", headers=employer.headers, json={
        "name": "Second", "slug": "second-co-x", "industry": "Retail", "location": "Paris"})
    assert second.status_code == 409


def test_bad_slugs_are_rejected(client) -> None:  # noqa: ANN001
    actor = register(client, "employer")
    response = client.post("/api/companies", headers=actor.headers, json={
        "name": "Bad", "slug": "Bad Slug!", "industry": "Retail", "location": "Paris"})
    assert response.status_code == 422
    assert "slug" in response.get_json()["error"]["details"]


def test_job_seekers_cannot_create_companies(client, seeker) -> None:  # noqa: ANN001
    response = client.post("/api/companies", headers=seeker.headers, json={
        "name": "Nope", "slug": "nope-co", "industry": "Retail", "location": "Paris"})
    assert response.status_code == 403
