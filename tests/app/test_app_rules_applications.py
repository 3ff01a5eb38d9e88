"""Rule: only an open job takes applications (published, not expired). Applying to an expired or closed job
is 409 `job_not_open`, to a draft 404 (drafts are not public), and creates nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

PASSWORD = "correct horse battery"


def _headers(client, role: str) -> dict[str, str]:  # noqa: ANN001
    """A fresh account's auth header (registration answers a token, or the login does)."""
    email = f"rule-{role}-{uuid.uuid4().hex[:12]}@example.com"
    registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD,
                                                          "full_name": "Application Rule", "role": role})
    assert registered.status_code in (201, 202), registered.get_json()
    token = (registered.get_json() or {}).get("token")
    if token is None:
        token = client.post("/api/auth/login", json={"email": email, "password": PASSWORD}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def employer_headers(client) -> dict[str, str]:  # noqa: ANN001
    """An employer with a company."""
    headers = _headers(client, "employer")
    slug = f"apply-{uuid.uuid4().hex[:10]}"
    created = client.post("/api/companies", headers=headers, json={
        "name": f"Company {slug}", "slug": slug, "industry": "Software", "location": "Berlin"})
    assert created.status_code == 201, created.get_json()
    return headers


@pytest.fixture
def seeker_headers(client) -> dict[str, str]:  # noqa: ANN001
    """A job seeker."""
    return _headers(client, "job_seeker")


def _job(client, headers: dict[str, str], **fields: Any) -> int:  # noqa: ANN001, ANN401
    response = client.post("/api/jobs", headers=headers, json={
        "title": "Data Engineer", "description": "Pipelines on PostgreSQL.", "location": "Berlin",
        "employment_type": "full_time", "experience_level": "mid", "status": "published", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["job"]["id"]


def _expire(engine: Engine, job_id: int) -> None:
    """Let the job's expiry pass (the API only accepts future expiries)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": job_id})


def _applications(engine: Engine, job_id: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM applications WHERE job_id = :id"), {"id": job_id})


def test_applying_to_an_expired_job_is_409_job_not_open_and_creates_nothing(
        client, engine, employer_headers, seeker_headers) -> None:  # noqa: ANN001
    job_id = _job(client, employer_headers, expires_at="2099-01-01T00:00:00Z")
    _expire(engine, job_id)
    response = client.post(f"/api/jobs/{job_id}/applications", headers=seeker_headers,
                           json={"cover_letter": "Still hiring?"})
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "job_not_open"
    assert "expired" in error["message"] and "GET /api/jobs" in error["message"]
    assert _applications(engine, job_id) == 0
    assert client.get("/api/applications", headers=seeker_headers).get_json()["total"] == 0


def test_a_job_whose_expiry_is_in_the_future_takes_applications(client, engine, employer_headers,  # noqa: ANN001
                                                                 seeker_headers) -> None:
    job_id = _job(client, employer_headers, expires_at="2099-01-01T00:00:00Z")
    response = client.post(f"/api/jobs/{job_id}/applications", headers=seeker_headers, json={})
    assert response.status_code == 201, response.get_json()
    assert _applications(engine, job_id) == 1


def test_applying_to_a_closed_job_is_409_job_not_open_and_creates_nothing(
        client, engine, employer_headers, seeker_headers) -> None:  # noqa: ANN001
    job_id = _job(client, employer_headers)
    assert client.post(f"/api/jobs/{job_id}/close", headers=employer_headers).status_code == 200
    response = client.post(f"/api/jobs/{job_id}/applications", headers=seeker_headers, json={})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "job_not_open"
    assert "closed" in response.get_json()["error"]["message"]
    assert _applications(engine, job_id) == 0


def test_applying_to_a_draft_is_404_and_creates_nothing(client, engine, employer_headers,  # noqa: ANN001
                                                        seeker_headers) -> None:
    job_id = _job(client, employer_headers, status="draft")
    response = client.post(f"/api/jobs/{job_id}/applications", headers=seeker_headers, json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert _applications(engine, job_id) == 0
