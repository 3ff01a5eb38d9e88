"""Every error is JSON with a stable code; never a stack trace."""

from __future__ import annotations

import pytest


def _is_error(response, status: int, code: str) -> None:  # noqa: ANN001
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)


def test_unknown_paths_are_json_404(client) -> None:  # noqa: ANN001
    _is_error(client.get("/api/does-not-exist"), 404, "not_found")


def test_wrong_methods_are_json_405_with_allow(client) -> None:  # noqa: ANN001
    response = client.delete("/api/jobs")
    _is_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_non_json_bodies_are_415(client) -> None:  # noqa: ANN001
    _is_error(client.post("/api/auth/login", data="email=a", content_type="application/x-www-form-urlencoded"),
              415, "unsupported_media_type")


@pytest.mark.parametrize("payload", ["[1, 2]", "{not json", "\"text\""])
def test_bodies_that_are_not_json_objects_are_400(client, payload: str) -> None:  # noqa: ANN001
    _is_error(client.post("/api/auth/login", data=payload, content_type="application/json"), 400, "bad_request")


def test_oversized_bodies_are_413(client) -> None:  # noqa: ANN001
    big = "x" * 70_000
    _is_error(client.post("/api/auth/login", data=f'{{"email": "{big}"}}', content_type="application/json"),
              413, "payload_too_large")


def test_unexpected_errors_are_json_500_without_details(app, client, monkeypatch) -> None:  # noqa: ANN001
    def boom(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("secret internals")

    monkeypatch.setattr("talentsphere.api.jobs.featured_jobs", boom)
    response = client.get("/api/jobs/featured?limit=7")
    _is_error(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)


def test_responses_carry_nosniff(client) -> None:  # noqa: ANN001
    assert client.get("/health").headers["X-Content-Type-Options"] == "nosniff"
