"""Accounts and tokens."""

from __future__ import annotations

import pytest
from app_helpers import register
from itsdangerous import URLSafeTimedSerializer

from talentsphere.security import TOKEN_SALT


def test_register_returns_the_user_and_a_working_token(client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    me = client.get("/api/auth/me", headers=actor.headers)
    assert me.status_code == 200
    assert me.get_json()["user"]["email"] == actor.user["email"]
    assert "password_hash" not in me.get_json()["user"]


def test_emails_are_case_insensitive_and_unique(client) -> None:  # noqa: ANN001
    body = {"email": "Dup.User@Example.com", "password": "long enough pw", "full_name": "Dup", "role": "employer"}
    first = client.post("/api/auth/register", json=body)
    second = client.post("/api/auth/register", json={**body, "email": "dup.user@example.COM"})
    assert first.status_code in (201, 409)  # 409 when an earlier run of this test left the account
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "email_taken"


def test_login_with_the_right_password_returns_a_token(client) -> None:  # noqa: ANN001
    actor = register(client, "employer")
    response = client.post("/api/auth/login", json={"email": actor.user["email"],
                                                     "password": "correct horse battery"})
    assert response.status_code == 200
    token = response.get_json()["token"]
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("email, password", [("nobody@example.com", "whatever1"), (None, "wrong password")])
def test_login_with_wrong_credentials_is_401_without_saying_which(client, email, password) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    response = client.post("/api/auth/login", json={"email": email or actor.user["email"], "password": password})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"


def test_passwords_are_stored_with_scrypt(client, engine) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT password_hash FROM users WHERE id = %s", (actor.user["id"],)).scalar()
    assert stored.startswith("scrypt:")
    assert "correct horse" not in stored


def test_admins_cannot_self_register(client) -> None:  # noqa: ANN001
    response = client.post("/api/auth/register", json={"email": "root@example.com", "password": "long enough pw",
                                                        "full_name": "Root", "role": "admin"})
    assert response.status_code == 422
    assert "role" in response.get_json()["error"]["details"]


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email", "password": "long enough pw", "full_name": "A", "role": "employer"}, "email"),
    ({"email": "a@example.com", "password": "short", "full_name": "A", "role": "employer"}, "password"),
    ({"email": "a@example.com", "password": "long enough pw", "full_name": "", "role": "employer"}, "full_name"),
    ({"email": "a@example.com", "password": "long enough pw", "full_name": "A", "role": "boss"}, "role"),
    ({"email": "a@example.com", "password": "long enough pw", "full_name": "A"}, "role"),
    ({"email": "a@example.com", "password": "long enough pw", "full_name": "A", "role": "employer", "x": 1}, "x"),
])
def test_invalid_registrations_name_the_field(client, body: dict, field: str) -> None:  # noqa: ANN001
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz"])
def test_missing_or_forged_tokens_are_401(client, header: str) -> None:  # noqa: ANN001
    response = client.get("/api/auth/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_expired_tokens_are_401(app, client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    token = actor.headers["Authorization"].split()[1]
    app.config["TOKEN_MAX_AGE"] = -1
    try:
        response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    finally:
        app.config["TOKEN_MAX_AGE"] = 86400
    assert response.status_code == 401
    assert "expired" in response.get_json()["error"]["message"]


def test_tokens_signed_with_another_key_are_401(client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    forged = URLSafeTimedSerializer("another-secret-key-of-enough-length!!", salt=TOKEN_SALT).dumps(
        {"uid": actor.user["id"]})
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_deactivated_account_loses_access(client, engine) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE users SET is_active = false WHERE id = %s", (actor.user["id"],))
    assert client.get("/api/auth/me", headers=actor.headers).status_code == 401
