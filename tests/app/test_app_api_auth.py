"""Accounts and tokens."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
from app_helpers import Actor, login, register
from itsdangerous import URLSafeTimedSerializer

from talentsphere.security import TOKEN_SALT


def test_register_then_login_gives_a_working_token(client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    me = client.get("/api/auth/me", headers=actor.headers)
    assert me.status_code == 200
    assert me.get_json()["user"]["email"] == actor.user["email"]
    assert "password_hash" not in me.get_json()["user"]


def test_emails_are_case_insensitive_and_unique(client, engine) -> None:  # noqa: ANN001
    email = f"Dup.{uuid.uuid4().hex[:8]}@Example.com"
    body = {"email": email, "password": "long enough pw", "full_name": "Dup", "role": "employer"}
    first = client.post("/api/auth/register", json=body)
    second = client.post("/api/auth/register", json={**body, "email": email.upper(), "full_name": "Other"})
    assert first.status_code == second.status_code == 202
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, full_name FROM users WHERE email = %s", (email.lower(),)).all()
    assert rows == [(email.lower(), "Dup")]


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


# Registration does not tell whether an email has an account -----------------------------------------------------

def _registration(email: str, password: str = "a new password", full_name: str = "Someone") -> dict:
    return {"email": email, "password": password, "full_name": full_name, "role": "job_seeker"}


def test_registering_a_taken_email_answers_exactly_as_a_new_one_and_changes_nothing(client, engine) -> None:  # noqa: ANN001
    existing = register(client, "employer")
    new = client.post("/api/auth/register", json=_registration(f"new-{uuid.uuid4().hex[:12]}@example.com"))
    taken = client.post("/api/auth/register", json=_registration(existing.user["email"].upper(),
                                                                 full_name="Attacker"))
    assert new.status_code == taken.status_code == 202
    assert new.get_json() == taken.get_json() == {
        "status": "accepted",
        "message": "if this email had no account, it has one now; log in with POST /api/auth/login"}
    assert "token" not in taken.get_json() and "token" not in new.get_json()
    # The account keeps its password, name and role: the attacker's password does not log in, the owner's does.
    assert client.post("/api/auth/login", json={"email": existing.user["email"],
                                                 "password": "a new password"}).status_code == 401
    assert client.post("/api/auth/login", json={"email": existing.user["email"],
                                                 "password": "correct horse battery"}).status_code == 200
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT full_name, role FROM users WHERE id = %s", (existing.user["id"],)).one()
    assert tuple(row) == ("Test employer", "employer")
    # And the existing account's tokens still work.
    assert client.get("/api/auth/me", headers=existing.headers).status_code == 200


def test_registering_a_taken_email_takes_as_long_as_a_new_one(client) -> None:  # noqa: ANN001
    # Both hash the password (scrypt, tens of ms): skipping the hash for a taken email would make it several
    # times faster, which a timer tells apart. Interleaved, medians of 7, a generous factor for a busy machine.
    existing = register(client, "job_seeker")
    new_times, taken_times = [], []
    for _ in range(7):
        for email, times in ((f"t-{uuid.uuid4().hex[:12]}@example.com", new_times),
                             (existing.user["email"], taken_times)):
            started = time.perf_counter()
            assert client.post("/api/auth/register", json=_registration(email)).status_code == 202
            times.append(time.perf_counter() - started)
    new_median, taken_median = statistics.median(new_times), statistics.median(taken_times)
    assert taken_median > 0.5 * new_median and new_median > 0.5 * taken_median, (new_times, taken_times)


def test_validation_errors_are_the_same_for_a_taken_email(client) -> None:  # noqa: ANN001
    existing = register(client, "job_seeker")
    body = {**_registration(existing.user["email"]), "password": "short"}
    fresh = {**body, "email": f"v-{uuid.uuid4().hex[:12]}@example.com"}
    taken, new = client.post("/api/auth/register", json=body), client.post("/api/auth/register", json=fresh)
    assert taken.status_code == new.status_code == 422
    assert taken.get_json() == new.get_json()


# Token revocation: token versions ------------------------------------------------------------------------------

def _token(actor: Actor) -> str:
    return actor.headers["Authorization"].split()[1]


def test_tokens_carry_the_account_token_version(app, client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    payload = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).loads(_token(actor))
    assert payload == {"uid": actor.user["id"], "tv": 0}


def test_logout_all_revokes_every_token_of_the_account_only(client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    phone = login(client, actor.user["email"])
    other = register(client, "job_seeker")
    response = client.post("/api/auth/logout-all", headers=actor.headers)
    assert response.status_code == 200
    assert response.get_json() == {"status": "logged_out",
                                   "message": "every token of this account is revoked; log in again"}
    for headers in (actor.headers, phone.headers):
        revoked = client.get("/api/auth/me", headers=headers)
        assert revoked.status_code == 401
        assert revoked.get_json()["error"] == {"code": "unauthorized", "message": "token revoked; log in again"}
    assert client.get("/api/auth/me", headers=other.headers).status_code == 200
    # Logging in again gives a token of the new version, which works.
    again = login(client, actor.user["email"])
    assert client.get("/api/auth/me", headers=again.headers).status_code == 200
    assert client.post("/api/auth/logout-all", headers=actor.headers).status_code == 401


def test_logout_all_needs_a_token(client) -> None:  # noqa: ANN001
    assert client.post("/api/auth/logout-all").status_code == 401


def test_a_token_of_another_version_is_a_json_401_not_a_500(app, client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    signer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT)
    for version in (1, -1, "0", None, True, 2**40):
        token = signer.dumps({"uid": actor.user["id"], "tv": version})
        response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, version
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.get_json()["error"]["message"] in ("token revoked; log in again",
                                                           "token invalid; log in again")


def test_a_token_of_the_release_before_versions_works_until_the_first_revocation(app, client) -> None:  # noqa: ANN001
    # Tokens issued before migration 0003 name only the user; every account had version 0 then.
    actor = register(client, "job_seeker")
    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=TOKEN_SALT).dumps({"uid": actor.user["id"]})
    headers = {"Authorization": f"Bearer {old}"}
    assert client.get("/api/auth/me", headers=headers).status_code == 200
    assert client.post("/api/auth/logout-all", headers=actor.headers).status_code == 200
    assert client.get("/api/auth/me", headers=headers).status_code == 401


# Password change -----------------------------------------------------------------------------------------------

def test_changing_the_password_revokes_older_tokens_and_returns_a_fresh_one(client, engine) -> None:  # noqa: ANN001
    actor = register(client, "employer")
    laptop = login(client, actor.user["email"])
    response = client.post("/api/auth/password", headers=actor.headers, json={
        "current_password": "correct horse battery", "new_password": "a better passphrase"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["user"]["id"] == actor.user["id"]
    fresh = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/auth/me", headers=fresh).status_code == 200
    for headers in (actor.headers, laptop.headers):
        assert client.get("/api/auth/me", headers=headers).get_json()["error"]["message"] == (
            "token revoked; log in again")
    assert client.post("/api/auth/login", json={"email": actor.user["email"],
                                                 "password": "correct horse battery"}).status_code == 401
    login(client, actor.user["email"], "a better passphrase")
    with engine.connect() as conn:
        version, stored = conn.exec_driver_sql("SELECT token_version, password_hash FROM users WHERE id = %s",
                                               (actor.user["id"],)).one()
    assert version == 1 and stored.startswith("scrypt:")


def test_a_wrong_current_password_is_403_and_changes_nothing(client) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    response = client.post("/api/auth/password", headers=actor.headers, json={
        "current_password": "not my password", "new_password": "a better passphrase"})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["code"] == "wrong_password" and "current_password" in error["details"]
    assert client.get("/api/auth/me", headers=actor.headers).status_code == 200
    login(client, actor.user["email"])  # the old password still works


@pytest.mark.parametrize("body, field", [
    ({"current_password": "correct horse battery", "new_password": "short"}, "new_password"),
    ({"current_password": "correct horse battery"}, "new_password"),
    ({"new_password": "a better passphrase"}, "current_password"),
    ({"current_password": "correct horse battery", "new_password": "x" * 129}, "new_password"),
])
def test_invalid_password_changes_are_422_naming_the_field(client, body: dict, field: str) -> None:  # noqa: ANN001
    actor = register(client, "job_seeker")
    response = client.post("/api/auth/password", headers=actor.headers, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]
    assert client.get("/api/auth/me", headers=actor.headers).status_code == 200


def test_changing_the_password_needs_a_token(client) -> None:  # noqa: ANN001
    response = client.post("/api/auth/password", json={"current_password": "correct horse battery",
                                                       "new_password": "a better passphrase"})
    assert response.status_code == 401
