"""Checks for inventory values: each returns None when a value is fine, else (what is wrong, how to fix it).

Roles attach these to their variables (`tsdeploy.rolespec.Variable.check`); validation runs them and words
the problem with the host, the variable, where the value came from and the bad value.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
from typing import Any

from tsdeploy.rolespec import Check
from tsdeploy.units import SIZE_FORMS, parse_size

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")


def integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "is not a whole number", f"set a whole number >= {minimum}"
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            return f"is out of range", f"set a whole number {bounds}"
        return None
    return check


def boolean(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, bool):
        return "is not true or false", "write true or false (YAML booleans, no quotes)"
    return None


def number(value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return "is not a non-negative number", "set seconds as a number, e.g. 1.0"
    return None


def size(value: Any) -> tuple[str, str] | None:
    try:
        parse_size(value)
    except ValueError:
        return "is not a size", f"write {SIZE_FORMS}"
    return None


def size_or_zero(value: Any) -> tuple[str, str] | None:
    """A size, or 0 for "no limit"."""
    if value == 0 and not isinstance(value, bool):
        return None
    problem = size(value)
    return (problem[0], f"{problem[1]}, or 0 for no limit") if problem else None


def address(value: Any) -> tuple[str, str] | None:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return "is not an IP address", "set the host's private IPv4/IPv6 address, e.g. 10.0.0.5"
    return None


def first_bad_network(items: list[Any]) -> tuple[str, str] | None:
    """The first item that is not an address or a network with its host bits clear (10.0.0.1/24 is a typo)."""
    for item in items:
        try:
            ipaddress.ip_network(str(item), strict=True)
        except ValueError:
            return f"contains {item!r}, not a network in CIDR form", "use the network address, e.g. 10.0.0.0/8"
    return None


def cidr_list(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, list) or not value:
        return "is not a non-empty list of CIDRs", "write a YAML list, e.g. [\"10.0.0.0/8\"]"
    return first_bad_network(value)


def optional_cidr_list(value: Any) -> tuple[str, str] | None:
    # An empty list is the secure default (nobody), so only the type and the entries are checked.
    if not isinstance(value, list):
        return "is not a list of CIDRs", "write a YAML list, e.g. [\"10.0.0.0/8\"], or [] for nobody"
    return first_bad_network(value)


def identifier(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        return "is not a lower-case identifier", "use letters, digits and _ (start with a letter), <= 63 chars"
    return None


_PG_DURATION = re.compile(r"^[0-9]+(ms|s|min|h|d)?$")


def pg_duration(value: Any) -> tuple[str, str] | None:
    """A PostgreSQL duration setting: a whole number with an optional unit (ms, s, min, h, d); 0 = no limit."""
    if not isinstance(value, (str, int)) or isinstance(value, bool) or not _PG_DURATION.match(str(value)):
        return ("is not a PostgreSQL duration",
                "write a whole number with a unit, e.g. 500ms, 5s, 15min, 1h (0 = no limit)")
    return None


def choice(*options: str) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if value not in options:
            return "is not supported", f"use one of: {', '.join(options)}"
        return None
    return check


def secret(min_length: int) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, str) or len(value) < min_length:
            return (f"is missing or shorter than {min_length} characters",
                    f"put a random value of >= {min_length} characters in the vault file "
                    "(e.g. `openssl rand -base64 32`)")
        return None
    return check


def hostname(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _HOSTNAME.match(value):
        return "is not a DNS name", "set the public host name, e.g. jobs.example.com"
    return None


def key_prefix(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _KEY_PREFIX.match(value):
        return "is not a key prefix", "use 1-32 letters, digits or _.:- (no glob characters), e.g. ts:"
    return None


def local_file(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not pathlib.Path(value).is_file():
        return "is not a readable file on the control node", "point it at the PEM file (outside the repository)"
    return None
