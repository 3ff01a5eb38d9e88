"""Parameter and body validation: every problem is reported per field, with the value and the fix."""

from __future__ import annotations

import enum
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from flask import request

from .errors import APIError, ValidationError

MAX_SALARY = Decimal("9999999999")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$")
# Web addresses (kind "url"): only these schemes can be rendered as a link without running anything
# (javascript:, data:, vbscript: and file: run or read things in the reader's browser).
WEB_SCHEMES = {"http": 80, "https": 443}
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Never valid unencoded in a URL (RFC 3986); a backslash is read as "/" by browsers, so
# "https://good.example\@evil.example" would name another host than the one a reader sees.
_URL_FORBIDDEN = set('<>"\\^`{|}')
# What stays as it is when the path, query and fragment are percent-encoded (reserved and unreserved
# characters, and "%" so existing escapes survive); everything else (non-ASCII) becomes UTF-8 %XX.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _url_host(hostname: str, bracketed: bool) -> tuple[str | None, str | None]:
    """The host in its normal form (lower case, IDNA, brackets for IPv6), or None and what is wrong."""
    if bracketed:
        try:
            return f"[{ipaddress.IPv6Address(hostname).compressed}]", None
        except ValueError:
            return None, f"host [{hostname}] is not an IPv6 address"
    if re.fullmatch(r"[0-9.]+", hostname):
        try:
            return str(ipaddress.IPv4Address(hostname)), None
        except ValueError:
            return None, f"host {hostname!r} is not an IPv4 address"
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None, f"host {hostname!r} is not a valid domain name"
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None, f"host {hostname!r} is not a domain name such as example.com"
    return ascii_host, None


def normalize_web_url(value: str, max_length: int | None = None) -> tuple[str | None, str | None]:
    """An absolute http(s) URL with a host in its normal form, or (None, what is wrong and how to fix it).

    Normal form: scheme and host in lower case, an internationalised host in IDNA (xn--), the scheme's
    default port dropped, non-ASCII characters of the path, query and fragment percent-encoded. Refused:
    other schemes (javascript:, data:, ...), relative addresses, no host, a user name or password (they
    would be published), whitespace and control or invisible formatting characters, characters no URL
    holds unencoded, and (``max_length``) a normal form longer than the column.
    """
    text = value.strip()
    shown = _show(value)
    example = "use an address such as https://example.com"
    if any(ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf"} for ch in text):
        return None, f"{shown} contains whitespace or control characters; remove them (a space in a path is %20)"
    try:
        parts = urlsplit(text)
    except ValueError:  # an unbalanced [ or ] in the host
        return None, f"{shown} is not a URL (unbalanced [ or ] around the host); {example}"
    scheme = parts.scheme.lower()
    if scheme not in WEB_SCHEMES:
        if not scheme or "." in scheme:
            return None, f"{shown} is not an absolute URL; start it with https:// ({example})"
        return None, f"{shown} uses the scheme {scheme}:, which is not allowed; only http and https are ({example})"
    if bad := sorted(_URL_FORBIDDEN.intersection(text)):
        return None, f"{shown} contains {', '.join(bad)}, which a URL cannot hold; percent-encode it or {example}"
    if not parts.netloc:
        return None, f"{shown} has no host; write it as scheme://host ({example})"
    if "@" in parts.netloc:
        return None, f"{shown} contains a user name or password (before @); remove it, it would be published"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return None, f"{shown} has an invalid port; use a port from 1 to 65535 or none, as in https://example.com"
    host, problem = _url_host(parts.hostname or "", parts.netloc.startswith("["))
    if problem:
        return None, f"{shown}: {problem}; {example}"
    netloc = host if port in (None, WEB_SCHEMES[scheme]) else f"{host}:{port}"
    url = urlunsplit((scheme, netloc, *(quote(part, safe=_URL_SAFE) for part in
                                        (parts.path, parts.query, parts.fragment))))
    if max_length is not None and len(url) > max_length:
        return None, f"{shown} is {len(url)} characters once normalised; use at most {max_length}"
    return url, None


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
    """One JSON body field: kind is str, int, bool, decimal, datetime, email, url or an Enum class.

    A "url" is an absolute http(s) address (``normalize_web_url``), stored normalised; an empty string
    means none (null) when the field is nullable.
    """
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
    if kind == "url":
        if not isinstance(value, str):
            return None, f"{_show(value)} is not a string; send an address such as https://example.com"
        if not value.strip():
            return (None, None) if field.nullable else (None, "must not be empty; send an address such as "
                                                              "https://example.com")
        return normalize_web_url(value, field.max_length)
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
