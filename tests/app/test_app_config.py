"""Configuration: the documented names and defaults (app/README.md); production refuses missing or weak values."""

from __future__ import annotations

import pytest

from talentsphere import create_app
from talentsphere.config import ConfigError, load_config

STRONG_KEY = "k" * 16 + "Q9x!" * 5


def test_defaults_are_the_documented_values() -> None:
    config = load_config({"FLASK_ENV": "development"})
    assert (config["DB_POOL_SIZE"], config["DB_MAX_OVERFLOW"], config["DB_POOL_TIMEOUT"],
            config["DB_POOL_RECYCLE"]) == (10, 20, 30, 3600)
    assert config["SLOW_QUERY_THRESHOLD"] == 1.0
    assert config["SQL_ECHO"] is False
    assert config["CACHE_KEY_PREFIX"] == "ts:"
    assert config["PROXY_COUNT"] == 1


def test_environment_values_override_defaults() -> None:
    config = load_config({"FLASK_ENV": "development", "DB_POOL_SIZE": "4", "SQL_ECHO": "true",
                          "SLOW_QUERY_THRESHOLD": "0.25", "CACHE_KEY_PREFIX": "app1:"})
    assert (config["DB_POOL_SIZE"], config["SQL_ECHO"], config["SLOW_QUERY_THRESHOLD"]) == (4, True, 0.25)
    assert config["CACHE_KEY_PREFIX"] == "app1:"


def test_render_style_postgres_urls_use_the_psycopg2_dialect() -> None:
    config = load_config({"FLASK_ENV": "development", "DATABASE_URL": "postgres://u@h/db"})
    assert config["DATABASE_URL"] == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize("environ, variable", [
    ({"SECRET_KEY": STRONG_KEY}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://u@h/db"}, "SECRET_KEY"),
    ({"DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "dev"}, "SECRET_KEY"),
    ({"DATABASE_URL": "postgresql://u@h/db", "SECRET_KEY": "short-but-not-a-word"}, "SECRET_KEY"),
])
def test_production_refuses_missing_or_weak_values_naming_the_variable(environ: dict, variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_config({"FLASK_ENV": "production", **environ})


def test_production_is_the_default_environment() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_config({})


@pytest.mark.parametrize("name, value", [("DB_POOL_SIZE", "ten"), ("SLOW_QUERY_THRESHOLD", "fast"),
                                         ("SQL_ECHO", "maybe"), ("DB_POOL_TIMEOUT", "-1")])
def test_malformed_values_are_rejected_with_name_and_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}={value!r}"):
        load_config({"FLASK_ENV": "development", name: value})


def test_create_app_stops_in_production_without_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("FLASK_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:1/db")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()
