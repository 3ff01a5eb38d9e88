"""SECRET_KEY rotation: tokens signed with a key in SECRET_KEY_FALLBACKS stay valid for their lifetime, new
tokens are signed with SECRET_KEY, a token of any other key is refused (app/README.md, Accounts and tokens)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from app_helpers import app_config, login, register
from flask import Flask

from talentsphere import create_app
from talentsphere.config import ConfigError, load_config

OLD, NEW, OTHER = (secrets.token_urlsafe(48) for _ in range(3))
PRODUCTION = {"FLASK_ENV": "production", "DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": NEW}


@contextmanager
def serving(app_env: dict[str, str], **keys: object) -> Iterator[Flask]:
    """The app with these keys (a release after a rotation), on the session's database; engine disposed."""
    application = create_app(app_config(app_env, **keys))
    try:
        yield application
    finally:
        application.extensions["talentsphere.db"].engine.dispose()


def _me(application: Flask, token: str) -> tuple[int, dict]:
    response = application.test_client().get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json()


def test_a_rotation_keeps_old_tokens_and_signs_new_ones_with_the_new_key(prepared, app_env) -> None:  # noqa: ANN001
    with serving(app_env, SECRET_KEY=OLD) as before:
        actor = register(before.test_client(), "job_seeker")
        old_token = actor.headers["Authorization"].split()[1]
    with serving(app_env, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD) as rotated:
        assert _me(rotated, old_token)[0] == 200
        new_token = login(rotated.test_client(), actor.user["email"]).headers["Authorization"].split()[1]
        assert _me(rotated, new_token)[0] == 200
    # The new token is signed with NEW: an app that knows only NEW accepts it, one that knows only OLD does not.
    with serving(app_env, SECRET_KEY=NEW) as after:
        assert _me(after, new_token)[0] == 200
        status, body = _me(after, old_token)  # the fallback removed: the old key's tokens are gone
        assert status == 401 and body["error"]["message"] == "token invalid; log in again"
    with serving(app_env, SECRET_KEY=OLD) as only_old:
        assert _me(only_old, new_token)[0] == 401


def test_a_token_of_a_key_in_neither_variable_is_refused(prepared, app_env) -> None:  # noqa: ANN001
    with serving(app_env, SECRET_KEY=OTHER) as elsewhere:
        token = register(elsewhere.test_client(), "job_seeker").headers["Authorization"].split()[1]
    with serving(app_env, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=f"{OLD},{secrets.token_urlsafe(48)}") as rotated:
        status, body = _me(rotated, token)
    assert status == 401
    assert body["error"] == {"code": "unauthorized", "message": "token invalid; log in again"}


def test_a_revoked_token_of_a_fallback_key_stays_revoked(prepared, app_env) -> None:  # noqa: ANN001
    with serving(app_env, SECRET_KEY=OLD) as before:
        client = before.test_client()
        actor = register(client, "job_seeker")
        assert client.post("/api/auth/logout-all", headers=actor.headers).status_code == 200
    with serving(app_env, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD) as rotated:
        status, body = _me(rotated, actor.headers["Authorization"].split()[1])
    assert status == 401 and body["error"]["message"] == "token revoked; log in again"


def test_fallbacks_are_read_comma_separated_from_the_environment() -> None:
    assert load_config(PRODUCTION)["SECRET_KEY_FALLBACKS"] == []
    assert load_config({**PRODUCTION, "SECRET_KEY_FALLBACKS": ""})["SECRET_KEY_FALLBACKS"] == []
    assert load_config({**PRODUCTION, "SECRET_KEY_FALLBACKS": f" {OLD} , {OTHER},"})["SECRET_KEY_FALLBACKS"] == [
        OLD, OTHER]


@pytest.mark.parametrize("fallbacks, position", [("dev", "1 of 1"), ("{old},short-but-not-a-word", "2 of 2"),
                                                 ("{old}," + "x" * 31, "2 of 2"),
                                                 ("__SECRET_vault_app_secret_key_fallback__", "1 of 1")])
def test_production_refuses_a_weak_fallback_naming_its_position_not_its_value(fallbacks: str,
                                                                             position: str) -> None:
    with pytest.raises(ConfigError, match=f"SECRET_KEY_FALLBACKS entry {position} is weak") as refused:
        load_config({**PRODUCTION, "SECRET_KEY_FALLBACKS": fallbacks.format(old=OLD)})
    assert OLD not in str(refused.value) and "short-but-not-a-word" not in str(refused.value)


def test_production_refuses_a_key_left_as_a_generated_placeholder() -> None:
    # `tsdeploy generate vm` without secrets writes __SECRET_<name>__ where a secret goes: public text.
    with pytest.raises(ConfigError, match="SECRET_KEY is weak .*unreplaced __SECRET_"):
        load_config({**PRODUCTION, "SECRET_KEY": "__SECRET_vault_app_secret_key__"})
