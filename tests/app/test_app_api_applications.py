"""Applications: apply, list mine, an employer's list, status lifecycle, withdraw, authorization."""

from __future__ import annotations

import pytest
from app_helpers import make_employer, post_job, register


@pytest.fixture
def applied(client, employer, seeker):  # noqa: ANN001, ANN201
    """A seeker's application to the employer's published job."""
    job = post_job(client, employer)
    response = client.post(f"/api/jobs/{job['id']}/applications", headers=seeker.headers,
                           json={"cover_letter": "I know Redis."})
    assert response.status_code == 201
    return job, response.get_json()["application"]


def test_applying_creates_a_submitted_application(applied) -> None:  # noqa: ANN001
    job, application = applied
    assert application["status"] == "submitted"
    assert application["job_id"] == job["id"]
    assert application["job_title"] == job["title"]


def test_applying_twice_is_409(client, seeker, applied) -> None:  # noqa: ANN001
    job, _ = applied
    again = client.post(f"/api/jobs/{job['id']}/applications", headers=seeker.headers, json={})
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_applied"


def test_closed_jobs_take_no_applications(client, employer, seeker) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    client.post(f"/api/jobs/{job['id']}/close", headers=employer.headers)
    response = client.post(f"/api/jobs/{job['id']}/applications", headers=seeker.headers, json={})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "job_not_open"


def test_drafts_and_unknown_jobs_cannot_be_applied_to(client, employer, seeker) -> None:  # noqa: ANN001
    draft = post_job(client, employer, status="draft")
    for job_id in (draft["id"], 2147483647):
        assert client.post(f"/api/jobs/{job_id}/applications", headers=seeker.headers, json={}).status_code == 404


def test_employers_cannot_apply(client, employer) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    assert client.post(f"/api/jobs/{job['id']}/applications", headers=employer.headers, json={}).status_code == 403


def test_my_applications_lists_only_mine(client, seeker, applied) -> None:  # noqa: ANN001
    _, application = applied
    other = register(client, "job_seeker")
    mine = client.get("/api/applications", headers=seeker.headers).get_json()
    theirs = client.get("/api/applications", headers=other.headers).get_json()
    assert [a["id"] for a in mine["items"]] == [application["id"]]
    assert theirs["items"] == [] and theirs["total"] == 0


def test_an_applicant_cannot_read_anothers_application(client, applied) -> None:  # noqa: ANN001
    _, application = applied
    other = register(client, "job_seeker")
    response = client.get(f"/api/applications/{application['id']}", headers=other.headers)
    assert response.status_code == 403


def test_the_applicant_and_the_employer_can_read_it(client, employer, seeker, applied) -> None:  # noqa: ANN001
    _, application = applied
    for actor in (seeker, employer):
        assert client.get(f"/api/applications/{application['id']}", headers=actor.headers).status_code == 200


def test_the_employer_lists_applications_for_their_job(client, employer, applied) -> None:  # noqa: ANN001
    job, application = applied
    body = client.get(f"/api/jobs/{job['id']}/applications", headers=employer.headers).get_json()
    assert [a["id"] for a in body["items"]] == [application["id"]]
    filtered = client.get(f"/api/jobs/{job['id']}/applications?status=hired", headers=employer.headers)
    assert filtered.get_json()["items"] == []


def test_another_employer_cannot_see_or_move_the_applications(client, applied) -> None:  # noqa: ANN001
    job, application = applied
    other = make_employer(client)
    assert client.get(f"/api/jobs/{job['id']}/applications", headers=other.headers).status_code == 403
    assert client.get(f"/api/applications/{application['id']}", headers=other.headers).status_code == 403
    moved = client.patch(f"/api/applications/{application['id']}", headers=other.headers,
                         json={"status": "reviewing"})
    assert moved.status_code == 403


def test_status_moves_through_the_pipeline(client, employer, applied) -> None:  # noqa: ANN001
    _, application = applied
    for status in ("reviewing", "interview", "offered", "hired"):
        response = client.patch(f"/api/applications/{application['id']}", headers=employer.headers,
                                json={"status": status})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["application"]["status"] == status


@pytest.mark.parametrize("status", ["hired", "offered", "interview"])
def test_skipping_steps_is_an_invalid_transition(client, employer, applied, status: str) -> None:  # noqa: ANN001
    _, application = applied
    response = client.patch(f"/api/applications/{application['id']}", headers=employer.headers,
                            json={"status": status})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "invalid_transition"


@pytest.mark.parametrize("status", ["withdrawn", "submitted"])
def test_employers_cannot_withdraw_or_resubmit(client, employer, applied, status: str) -> None:  # noqa: ANN001
    _, application = applied
    response = client.patch(f"/api/applications/{application['id']}", headers=employer.headers,
                            json={"status": status})
    assert response.status_code == 422


def test_the_applicant_withdraws_once(client, seeker, applied) -> None:  # noqa: ANN001
    _, application = applied
    first = client.post(f"/api/applications/{application['id']}/withdraw", headers=seeker.headers)
    second = client.post(f"/api/applications/{application['id']}/withdraw", headers=seeker.headers)
    assert first.get_json()["application"]["status"] == "withdrawn"
    assert second.status_code == 409


def test_only_the_applicant_can_withdraw(client, applied) -> None:  # noqa: ANN001
    _, application = applied
    other = register(client, "job_seeker")
    response = client.post(f"/api/applications/{application['id']}/withdraw", headers=other.headers)
    assert response.status_code == 403


def test_unknown_applications_are_404(client, seeker) -> None:  # noqa: ANN001
    assert client.get("/api/applications/2147483647", headers=seeker.headers).status_code == 404
