"""Parameter and body validation: every problem is reported per field, with the value and the fix."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import request

from .errors import APIError, ValidationError

MAX_SALARY = Decimal("9999999999")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Query:
    """Reads query-string parameters, collecting all errors before raising one 422."""

    def __init__(self) -> None:
        self.args = request.args
        self.errors: dict[str, str] = {}

    def done(self) -> None:
        """Raise a 422 listing every invalid parameter."""
        if self.errors:
            raise ValidationError(self.errors)

    def _raw(self, name: str) -> str | None:
        value = self.args.get(name)
        return None if value is None or value == "" else value

    def integer(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        """An integer between ``lo`` and ``hi``."""
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.errors[name] = f"{_show(raw)} is not an integer; use a whole number from {lo} to {hi}"
            return default
        if not lo <= value <= hi:
            self.errors[name] = f"{value} is out of range; use a number from {lo} to {hi}"
            return default
        return value

    def decimal(self, name: str) -> Decimal | None:
        """A non-negative amount."""
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            self.errors[name] = f"{_show(raw)} is not a number; use an amount such as 50000"
            return None
        if not value.is_finite() or not 0 <= value <= MAX_SALARY:
            self.errors[name] = f"{_show(raw)} is out of range; use an amount from 0 to {MAX_SALARY}"
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        """true/false."""
        raw = self._raw(name)
        if raw is None:
            return None
        if raw.lower() in {"true", "1"}:
            return True
        if raw.lower() in {"false", "0"}:
            return False
        self.errors[name] = f"{_show(raw)} is not a boolean; use true or false"
        return None

    def choice(self, name: str, choices: list[str] | type[enum.Enum], default: str | None = None) -> str | None:
        """One of ``choices`` (strings or an Enum's values)."""
        allowed = [m.value for m in choices] if isinstance(choices, type) else list(choices)
        raw = self._raw(name)
        if raw is None:
            return default
        if raw not in allowed:
            self.errors[name] = f"{_show(raw)} is not allowed; use one of {', '.join(allowed)}"
            return default
        return raw

    def text(self, name: str, max_length: int) -> str | None:
        """Free text, stripped, at most ``max_length`` characters."""
        raw = self._raw(name)
        if raw is None:
            return None
        value = raw.strip()
        if len(value) > max_length or "\x00" in value:
            self.errors[name] = f"too long or contains NUL; use at most {max_length} characters"
            return None
        return value or None


@dataclass(frozen=True)
class Field:
    """One JSON body field: kind is str, int, bool, decimal, datetime, email or an Enum class."""
    kind: Any
    required: bool = False
    max_length: int = 200
    min_length: int = 0
    nullable: bool = False


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400/415 explaining what to send."""
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "send a JSON object with Content-Type: application/json")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise APIError(400, "bad_request", "the body is not a JSON object")
    return body


def _check(name: str, field: Field, value: Any) -> tuple[Any, str | None]:
    kind = field.kind
    if value is None:
        return (None, None) if field.nullable else (None, "must not be null")
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        allowed = [m.value for m in kind]
        if value not in allowed:
            return None, f"{_show(value)} is not allowed; use one of {', '.join(allowed)}"
        return kind(value), None
    if kind in (str, "email"):
        if not isinstance(value, str):
            return None, f"{_show(value)} is not a string"
        stripped = value.strip()
        if "\x00" in stripped or not field.min_length <= len(stripped) <= field.max_length:
            return None, f"must be {field.min_length} to {field.max_length} characters without NUL"
        if kind == "email":
            if not EMAIL_RE.match(stripped):
                return None, f"{_show(value)} is not an email address; use name@example.com"
            return stripped.lower(), None
        return stripped, None
    if kind is bool:
        if not isinstance(value, bool):
            return None, f"{_show(value)} is not a boolean; use true or false"
        return value, None
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"{_show(value)} is not a number"
        amount = Decimal(str(value))
        if not amount.is_finite() or not 0 <= amount <= MAX_SALARY:
            return None, f"{_show(value)} is out of range; use 0 to {MAX_SALARY}"
        return amount.quantize(Decimal("0.01")), None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
            return None, f"{_show(value)} is not a positive integer id"
        return value, None
    if kind == "datetime":
        if not isinstance(value, str):
            return None, f"{_show(value)} is not an ISO 8601 date-time"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None, f"{_show(value)} is not an ISO 8601 date-time; use e.g. 2030-01-31T00:00:00Z"
        if parsed.tzinfo is None:
            return None, f"{_show(value)} has no time zone; add Z or +00:00"
        return parsed, None
    raise AssertionError(f"unknown field kind {kind!r}")


def parse_body(schema: dict[str, Field], partial: bool = False) -> dict[str, Any]:
    """Validate the JSON body against ``schema``; unknown fields and all errors are reported at once."""
    body = json_body()
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in body:
        if name not in schema:
            errors[name] = f"unknown field; allowed: {', '.join(schema)}"
    for name, field in schema.items():
        if name not in body:
            if field.required and not partial:
                errors[name] = "is required"
            continue
        value, problem = _check(name, field, body[name])
        if problem:
            errors[name] = problem
        else:
            values[name] = value
    if errors:
        raise ValidationError(errors)
    return values
