"""Rule: featuring a job is for verified companies, at most FEATURED_JOBS_PER_COMPANY (default 3) open
featured jobs (published or draft, not expired) per company at a time, on create and on update.

An unverified company is 403 `featuring_not_allowed`, a company at its limit 409 `featured_limit_reached`;
both name the `is_featured` field and write nothing. Verification is the TalentSphere team's decision,
outside the API: here, as in production, it is written to the database.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Engine, text

from app_helpers import make_employer
from talentsphere.config import load_config


class Employer(NamedTuple):
    """An employer's auth header and company id."""
    headers: dict[str, str]
    company_id: int


def _employer(client) -> Employer:  # noqa: ANN001
    """A fresh employer with a company of its own."""
    actor = make_employer(client, f"feat-{uuid.uuid4().hex[:10]}")
    return Employer(actor.headers, actor.company["id"])


def _set_verified(engine: Engine, employer: Employer, verified: bool) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE companies SET is_verified = :verified WHERE id = :id"),
                     {"verified": verified, "id": employer.company_id})


@pytest.fixture
def unverified(client) -> Employer:  # noqa: ANN001
    """An employer whose company is not verified (every company starts so)."""
    return _employer(client)


@pytest.fixture
def verified(client, engine) -> Employer:  # noqa: ANN001
    """An employer whose company the TalentSphere team verified."""
    employer = _employer(client)
    _set_verified(engine, employer, True)
    return employer


@pytest.fixture
def limit(app) -> int:  # noqa: ANN001
    return app.config["FEATURED_JOBS_PER_COMPANY"]


def _post(client, employer: Employer, **fields: Any):  # noqa: ANN001, ANN202, ANN401
    return client.post("/api/jobs", headers=employer.headers, json={
        "title": "Growth Marketer", "description": "Grow a marketplace of talent.", "location": "Berlin",
        "employment_type": "full_time", "experience_level": "mid", "status": "published", **fields})


def _job(client, employer: Employer, **fields: Any) -> int:  # noqa: ANN001, ANN401
    response = _post(client, employer, **fields)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["job"]["id"]


def _company_jobs(engine: Engine, employer: Employer) -> list[tuple[int, bool]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT id, is_featured FROM jobs WHERE company_id = :id ORDER BY id"),
            {"id": employer.company_id})]


def _featured_ids(client) -> set[int]:  # noqa: ANN001
    return {job["id"] for job in client.get("/api/jobs/featured?limit=50").get_json()["items"]}


def test_the_default_limit_is_three_featured_jobs_per_company() -> None:
    assert load_config({"FLASK_ENV": "development"})["FEATURED_JOBS_PER_COMPANY"] == 3
    assert load_config({"FLASK_ENV": "development", "FEATURED_JOBS_PER_COMPANY": "0"})[
        "FEATURED_JOBS_PER_COMPANY"] == 0


def test_an_unverified_company_cannot_post_a_featured_job(client, engine, unverified) -> None:  # noqa: ANN001
    response = _post(client, unverified, is_featured=True)
    assert response.status_code == 403, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "featuring_not_allowed"
    assert "verified" in error["message"]
    assert "verified" in error["details"]["is_featured"]
    assert _company_jobs(engine, unverified) == []  # nothing written


def test_an_unverified_company_cannot_feature_a_job_by_update(client, engine, unverified) -> None:  # noqa: ANN001
    job_id = _job(client, unverified)
    response = client.patch(f"/api/jobs/{job_id}", headers=unverified.headers,
                            json={"is_featured": True, "title": "New"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "featuring_not_allowed"
    assert client.get(f"/api/jobs/{job_id}").get_json()["job"]["title"] == "Growth Marketer"  # nothing changed
    assert _company_jobs(engine, unverified) == [(job_id, False)]


def test_an_unverified_company_posts_and_edits_unfeatured_jobs_as_before(client, unverified) -> None:  # noqa: ANN001
    job_id = _job(client, unverified, is_featured=False)
    response = client.patch(f"/api/jobs/{job_id}", headers=unverified.headers,
                            json={"is_featured": False, "title": "New"})
    assert response.status_code == 200, response.get_json()


def test_a_verified_company_features_up_to_the_limit(client, engine, verified, limit: int) -> None:  # noqa: ANN001
    featured = [_job(client, verified, is_featured=True) for _ in range(limit)]
    assert set(featured) <= _featured_ids(client)
    response = _post(client, verified, is_featured=True)
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "featured_limit_reached"
    assert f"{limit} open featured jobs and the limit is {limit}" in error["message"]
    assert "close one" in error["details"]["is_featured"]
    assert [job for job, _ in _company_jobs(engine, verified)] == featured  # nothing written
    plain = _job(client, verified)
    response = client.patch(f"/api/jobs/{plain}", headers=verified.headers, json={"is_featured": True})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "featured_limit_reached"
    assert (plain, False) in _company_jobs(engine, verified)


def test_a_featured_job_at_the_limit_can_still_be_edited(client, verified, limit: int) -> None:  # noqa: ANN001
    featured = [_job(client, verified, is_featured=True) for _ in range(limit)]
    response = client.patch(f"/api/jobs/{featured[0]}", headers=verified.headers,
                            json={"is_featured": True, "title": "Senior Growth Marketer"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["job"]["is_featured"] is True


@pytest.mark.parametrize("free", ["close", "unfeature", "expire"])
def test_closing_unfeaturing_or_expiry_frees_a_place(client, engine, verified, limit: int,  # noqa: ANN001
                                                     free: str) -> None:
    featured = [_job(client, verified, is_featured=True) for _ in range(limit)]
    assert _post(client, verified, is_featured=True).status_code == 409
    if free == "close":
        assert client.post(f"/api/jobs/{featured[0]}/close", headers=verified.headers).status_code == 200
    elif free == "unfeature":
        unfeatured = client.patch(f"/api/jobs/{featured[0]}", headers=verified.headers, json={"is_featured": False})
        assert unfeatured.status_code == 200
    else:
        with engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET expires_at = now() - interval '1 minute' WHERE id = :id"),
                         {"id": featured[0]})
    again = _job(client, verified, is_featured=True)
    assert again in _featured_ids(client)


def test_drafts_hold_a_featured_place(client, verified, limit: int) -> None:  # noqa: ANN001
    for _ in range(limit):
        _job(client, verified, is_featured=True, status="draft")
    assert _post(client, verified, is_featured=True).status_code == 409


def test_a_company_that_loses_verification_cannot_feature_more(client, engine, verified) -> None:  # noqa: ANN001
    kept = _job(client, verified, is_featured=True)
    _set_verified(engine, verified, False)
    assert _post(client, verified, is_featured=True).status_code == 403
    edited = client.patch(f"/api/jobs/{kept}", headers=verified.headers, json={"title": "Still featured"})
    assert edited.status_code == 200


def test_featuring_requests_of_one_company_run_one_at_a_time(app, client, engine, verified) -> None:  # noqa: ANN001
    """Two requests must not both see the last free place: each waits for the company row, while a job
    posted without featuring does not wait."""
    results: dict[str, Any] = {}

    def post_featured() -> None:
        results["status"] = _post(app.test_client(), verified, is_featured=True).status_code

    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text("SELECT id FROM companies WHERE id = :id FOR NO KEY UPDATE"),
                     {"id": verified.company_id})
        thread = threading.Thread(target=post_featured)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "featuring did not wait for the company's other featuring request"
        started = time.monotonic()
        assert _post(client, verified).status_code == 201  # not featured: no wait
        assert time.monotonic() - started < 1.0
        transaction.rollback()
    thread.join(10)
    assert results == {"status": 201}
