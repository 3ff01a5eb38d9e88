"""Configuration from the environment: the variables and defaults listed in app/README.md (Configuration).

All defaults live in ``DEFAULTS``; ``load_config`` reads the environment (or a mapping given by tests),
converts types, and in production refuses to start on a missing or weak required value, naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .release import release_id

DEFAULTS: dict[str, str] = {
    "DATABASE_URL": "postgresql+psycopg2://localhost/talentsphere",
    "REDIS_URL": "redis://localhost:6379/0",
    "SECRET_KEY": "",
    # Earlier SECRET_KEYs, comma-separated: tokens they signed stay valid for their lifetime (key rotation).
    "SECRET_KEY_FALLBACKS": "",
    # A second password of DATABASE_URL's user, tried when PostgreSQL refuses the URL's (password rotation).
    "DATABASE_PASSWORD_FALLBACK": "",
    "DB_POOL_SIZE": "10",
    "DB_MAX_OVERFLOW": "20",
    "DB_POOL_TIMEOUT": "30",
    "DB_POOL_RECYCLE": "3600",
    "SLOW_QUERY_THRESHOLD": "1.0",
    "SQL_ECHO": "false",
    "FLASK_ENV": "production",
    "CACHE_KEY_PREFIX": "ts:",
    "PROXY_COUNT": "1",
    "TOKEN_MAX_AGE": "86400",
    "MAX_CONTENT_LENGTH": "65536",
    "REDIS_SOCKET_TIMEOUT": "0.25",
    "REDIS_BREAKER_COOLDOWN": "5",
    # Seconds a cache miss waits for another request filling the same entry (talentsphere/cache.py); 0 = off.
    "CACHE_LOCK_WAIT": "0.5",
    "DB_CONNECT_TIMEOUT": "2",
    "DB_STATEMENT_TIMEOUT": "5",
    "DB_BREAKER_COOLDOWN": "0.5",
}

INT_KEYS = ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE", "PROXY_COUNT",
            "TOKEN_MAX_AGE", "MAX_CONTENT_LENGTH", "DB_CONNECT_TIMEOUT")
FLOAT_KEYS = ("SLOW_QUERY_THRESHOLD", "REDIS_SOCKET_TIMEOUT", "REDIS_BREAKER_COOLDOWN", "DB_STATEMENT_TIMEOUT",
              "DB_BREAKER_COOLDOWN", "CACHE_LOCK_WAIT")
BOOL_KEYS = ("SQL_ECHO",)

# Business rules (api/jobs.py): the featured jobs one verified company may have open at once (published or
# draft, not expired); 0 = no company features jobs through the API.
DEFAULTS["FEATURED_JOBS_PER_COMPANY"] = "3"
INT_KEYS += ("FEATURED_JOBS_PER_COMPANY",)

# Login protection (login_guard.py; app/README.md, Login protection): failed logins of one account, and of
# one client address, before lockouts start; the window they are counted in (s); the first lockout (s), which
# doubles with every further failure up to the longest; login + registration attempts per address a minute.
# 0 turns a limit off.
DEFAULTS.update({"AUTH_MAX_FAILURES": "5", "AUTH_ADDRESS_MAX_FAILURES": "20", "AUTH_FAILURE_WINDOW": "900",
                 "AUTH_LOCKOUT_SECONDS": "60", "AUTH_LOCKOUT_MAX_SECONDS": "3600", "AUTH_ADDRESS_RATE": "30"})
INT_KEYS += ("AUTH_MAX_FAILURES", "AUTH_ADDRESS_MAX_FAILURES", "AUTH_ADDRESS_RATE")
FLOAT_KEYS += ("AUTH_FAILURE_WINDOW", "AUTH_LOCKOUT_SECONDS", "AUTH_LOCKOUT_MAX_SECONDS")

# libpq's connect_timeout is whole seconds and at least 2 (it reads 1 as 2, and 0 as "wait forever").
MIN_DB_CONNECT_TIMEOUT = 2
# Secret keys shorter than this are brute-forceable for itsdangerous' HMAC signatures.
MIN_SECRET_KEY_LENGTH = 32
WEAK_SECRETS = {"dev", "secret", "changeme", "change-me", "development", "password", "test"}
#: How a generated preview config marks a secret the operator must fill in (`tsdeploy generate vm`): such a
#: value is public, so a key left like this would let anyone sign tokens.
PLACEHOLDER_PREFIX = "__SECRET_"


def _weak(key: str) -> bool:
    return len(key) < MIN_SECRET_KEY_LENGTH or key.lower() in WEAK_SECRETS or key.startswith(PLACEHOLDER_PREFIX)


# `talentsphere migrate` only (app/README.md, Migrations): PostgreSQL durations for its own connection.
MIGRATION_DEFAULTS: dict[str, str] = {
    "MIGRATION_LOCK_TIMEOUT": "5s",
    "MIGRATION_STATEMENT_TIMEOUT": "15min",
}
# A whole number with one of PostgreSQL's time units (no unit = milliseconds); 0 turns the timeout off.
_DURATION = re.compile(r"(0|[1-9][0-9]{0,9})(ms|s|min|h|d)?")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_TIMEOUT_MS = 2**31 - 1  # PostgreSQL's limit for lock_timeout and statement_timeout


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable and the fix."""


def _to_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")


def _convert(name: str, raw: str) -> Any:
    if name in INT_KEYS:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer; set it to a whole number") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value
    if name in FLOAT_KEYS:
        try:
            number = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number; set it to seconds, e.g. 1.0") from None
        if number < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return number
    if name in BOOL_KEYS:
        return _to_bool(name, raw)
    return raw


def normalize_database_url(url: str) -> str:
    """Map Render/Heroku style ``postgres://`` URLs to SQLAlchemy's psycopg2 dialect."""
    if url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _check_production(values: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """Fail fast in production rather than run with a guessable key or a default database."""
    if "DATABASE_URL" not in given or not given["DATABASE_URL"].strip():
        raise ConfigError("DATABASE_URL is not set; set it to postgresql://USER@HOST/DB "
                          "(password in the env file, not the command line)")
    secret = values["SECRET_KEY"]
    if not secret:
        raise ConfigError("SECRET_KEY is not set; set it to a random value of at least "
                          f"{MIN_SECRET_KEY_LENGTH} characters (python -c 'import secrets; "
                          "print(secrets.token_urlsafe(48))')")
    if _weak(secret):
        raise ConfigError(f"SECRET_KEY is weak ({len(secret)} characters, or an unreplaced {PLACEHOLDER_PREFIX}... "
                          f"placeholder); use a random value of at least {MIN_SECRET_KEY_LENGTH} characters")


def _secret_key_fallbacks(raw: Any, production: bool) -> list[str]:
    """SECRET_KEY_FALLBACKS as a list (any order: a token is checked against each; security.signing_keys).

    Comma-separated in the environment (generated keys such as ``secrets.token_urlsafe(48)`` hold no comma);
    a list from tests. Empty entries are dropped, so a trailing comma or an empty variable is no error. In
    production each key must be as strong as SECRET_KEY: a weak old key still signs valid tokens. Messages
    name the entry's position and length, never the key.
    """
    keys = [key.strip() for key in (raw.split(",") if isinstance(raw, str) else list(raw or []))]
    keys = [key for key in keys if key]
    if production:
        for position, key in enumerate(keys, start=1):
            if _weak(key):
                raise ConfigError(f"SECRET_KEY_FALLBACKS entry {position} of {len(keys)} is weak ({len(key)} "
                                  f"characters, or an unreplaced {PLACEHOLDER_PREFIX}... placeholder); every key must have at least {MIN_SECRET_KEY_LENGTH} random "
                                  "characters, separated by commas (drop a key nobody's tokens need any more)")
    return keys


def _check_database_timeouts(values: Mapping[str, Any]) -> None:
    """The outage settings (app/README.md, Database outage): a connect timeout libpq honours as given."""
    connect = values["DB_CONNECT_TIMEOUT"]
    if isinstance(connect, bool) or not isinstance(connect, int) or connect < MIN_DB_CONNECT_TIMEOUT:
        raise ConfigError(f"DB_CONNECT_TIMEOUT={connect!r} must be a whole number of seconds of at least "
                          f"{MIN_DB_CONNECT_TIMEOUT} (libpq reads 1 as 2 and 0 as 'wait forever'); the default is 2")
    for name in ("DB_STATEMENT_TIMEOUT", "DB_BREAKER_COOLDOWN"):
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name}={value!r} must be a number of seconds, 0 or more (0 turns it off)")
    statement = values["DB_STATEMENT_TIMEOUT"]
    if 0 < statement < 0.001:
        raise ConfigError(f"DB_STATEMENT_TIMEOUT={statement!r} is below PostgreSQL's 1 ms resolution; "
                          "use 0 (off) or seconds such as 5")


def migration_timeouts(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``lock_timeout`` and ``statement_timeout`` for the migration connection, validated (ConfigError)."""
    source = os.environ if environ is None else environ
    settings: dict[str, str] = {}
    for name, default in MIGRATION_DEFAULTS.items():
        raw = source.get(name, "")
        value = raw.strip() or default  # unset or empty: the default
        match = _DURATION.fullmatch(value)
        if not match or int(match[1]) * _UNIT_MS[match[2] or "ms"] > _MAX_TIMEOUT_MS:
            raise ConfigError(f"{name}={raw!r} is not a PostgreSQL duration; set a whole number with a unit "
                              f"(ms, s, min, h, d) up to 24d, e.g. {default} (the default), or 0 for no limit")
        settings[name.removeprefix("MIGRATION_").lower()] = value
    return settings


def load_config(environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the app configuration: defaults, then the environment, then explicit overrides (tests)."""
    source = os.environ if environ is None else environ
    given = {key: source[key] for key in DEFAULTS if key in source}
    raw = {**DEFAULTS, **given}
    values: dict[str, Any] = {name: _convert(name, value) for name, value in raw.items()}
    for key, value in (overrides or {}).items():
        values[key] = value
        given[key] = str(value)
    if values["FLASK_ENV"] not in {"production", "development", "testing"}:
        raise ConfigError(f"FLASK_ENV={values['FLASK_ENV']!r} is unknown; use production, development or testing")
    if values["FLASK_ENV"] == "production":
        _check_production(values, given)
    elif not values["SECRET_KEY"]:
        # Development/testing only: a per-process random key, so tokens die with the process.
        values["SECRET_KEY"] = os.urandom(32).hex()
    values["SECRET_KEY_FALLBACKS"] = _secret_key_fallbacks(values["SECRET_KEY_FALLBACKS"],
                                                           values["FLASK_ENV"] == "production")
    _check_database_timeouts(values)
    if not str(values["CACHE_KEY_PREFIX"]):
        raise ConfigError("CACHE_KEY_PREFIX is empty; the Redis ACL limits the app to a prefix such as 'ts:'")
    values["DATABASE_URL"] = normalize_database_url(values["DATABASE_URL"])
    values["TESTING"] = values["FLASK_ENV"] == "testing"
    if "RELEASE_ID" not in values:  # read once, when the app is created (tests override it)
        values["RELEASE_ID"] = release_id(environ=source)
    return values
