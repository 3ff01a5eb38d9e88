"""Checks for inventory values: each returns None when a value is fine, else (what is wrong, how to fix it).

Roles attach these to their variables (`tsdeploy.rolespec.Variable.check`); validation runs them and words
the problem with the host, the variable, where the value came from and the bad value.
"""

from __future__ import annotations

import ipaddress
import math
import pathlib
import re
import subprocess
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


_PROM_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def prometheus_duration(value: Any) -> tuple[str, str] | None:
    """A Prometheus/Alertmanager duration: units ms, s, m, h, d, w, y, combinable (1h30m)."""
    if not isinstance(value, str) or not _PROM_DURATION.match(value) or not any(c in "123456789" for c in value):
        return ("is not a Prometheus duration",
                "write a positive number with a unit: ms, s, m, h, d, w or y, e.g. 15s, 5m, 15d, 1h30m")
    return None


def url_list(value: Any) -> tuple[str, str] | None:
    """A list (maybe empty) of http:// or https:// URLs with a host."""
    from urllib.parse import urlsplit

    if not isinstance(value, list):
        return "is not a list of URLs", 'write a YAML list, e.g. ["https://hooks.example.org/alerts"], or []'
    for item in value:
        parts = urlsplit(item) if isinstance(item, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(
                c.isspace() for c in item):
            return (f"has {item!r}, which is not an http(s) URL",
                    'write each entry as https://host[:port]/path')
    return None


def host_port(value: Any) -> tuple[str, str] | None:
    """host:port (a name or an IPv4 address, then a port), or empty for none."""
    if value == "":
        return None
    if isinstance(value, str) and ":" in value:
        name, _, port = value.rpartition(":")
        if _HOSTNAME.match(name) and port.isdigit() and 0 < int(port) < 65536:
            return None
    return "is not host:port", "write e.g. smtp.example.org:587, or \"\" for none"


def choice(*options: str) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if value not in options:
            return "is not supported", f"use one of: {', '.join(options)}"
        return None
    return check


#: Words that mark a value copied from an example or typed by a person, never generated: matched in the value
#: lower-cased with everything but letters and digits removed ("REPLACE-ME" and "replace_me" alike).
PLACEHOLDER_WORDS = ("replaceme", "changeme", "example", "password", "passwd", "placeholder", "secret",
                     "dummy", "sample", "default", "insecure", "letmein", "qwerty")
#: A generated secret's rules: length and estimated entropy (`entropy_bits`).
SECRET_MIN_LENGTH, SECRET_MIN_BITS = 32, 128
#: Runs this long of one character ("xxxxxxxx") or of consecutive ones ("01234567", "hgfedcba") mark a typed
#: value; a random 43-character value has one with a probability below 1e-9 (hex: about 1e-7).
_RUN = 8
#: A stretch this long that occurs twice marks a repeated pattern ("Tr0ub4dor&3Tr0ub4dor&3...").
_REPEAT = 10
#: Fewer distinct characters than this marks a repeated pattern ("abababab...").
_MIN_DISTINCT = 8
_GENERATE = "`openssl rand -base64 32`"
_HEX = frozenset("0123456789abcdef")
_HEX_UPPER = frozenset("0123456789ABCDEF")


def entropy_bits(value: str) -> float:
    """The entropy of `value` estimated by counting character classes: length x log2(alphabet size).

    The alphabet is the sum of the classes the value uses: lower-case letters 26, upper-case 26, digits 10,
    anything else 33 (ASCII punctuation and space); a value of hex digits (digits and a-f, one case)
    counts 16.
    This credits a random value with about what its generator gives it (`openssl rand -base64 32`: 44
    characters, 260-290 bits; `openssl rand -hex 16`: exactly 128; the lab's `secrets.token_urlsafe(32)`: 43
    characters, 255-285), and overrates values that use many classes but little randomness ("Password1234567890..."):
    `secret_pattern` refuses those (placeholder words, runs, repeats) before this estimate is consulted.
    """
    if not value:
        return 0.0
    used = set(value)
    if ((used <= _HEX or used <= _HEX_UPPER) and any(c.isdigit() for c in used)
            and any(c.isalpha() for c in used)):
        alphabet = 16
    else:
        alphabet = ((26 if any(c.islower() and c.isascii() for c in value) else 0)
                    + (26 if any(c.isupper() and c.isascii() for c in value) else 0)
                    + (10 if any(c.isdigit() and c.isascii() for c in value) else 0)
                    + (33 if any(not (c.isascii() and c.isalnum()) for c in value) else 0))
    return len(value) * math.log2(alphabet)


def _longest_run(value: str) -> int:
    """The longest stretch of one character, or of consecutive characters up or down ("abcd", "4321")."""
    longest = same = up = down = 1
    for before, after in zip(value, value[1:]):
        step = ord(after) - ord(before)
        same = same + 1 if step == 0 else 1
        up = up + 1 if step == 1 else 1
        down = down + 1 if step == -1 else 1
        longest = max(longest, same, up, down)
    return longest


def _repeats_a_stretch(value: str) -> bool:
    seen: set[str] = set()
    for start in range(len(value) - _REPEAT + 1):
        stretch = value[start:start + _REPEAT]
        if stretch in seen:
            return True
        seen.add(stretch)
    return False


def _is_placeholder(value: str) -> bool:
    folded = "".join(c for c in value.lower() if c.isalnum())
    return any(word in folded for word in PLACEHOLDER_WORDS)


def secret_pattern(value: str) -> str | None:
    """Why `value` is not a generated secret (a placeholder, or typed), or None. Never quotes the value."""
    if _is_placeholder(value):
        return ("is a placeholder, not a generated secret (it contains a word such as REPLACE-ME, changeme, "
                "example or password)")
    if len(value) > 1 and _longest_run(value) >= _RUN:
        return (f"is not random: it holds {_RUN} or more repeated or consecutive characters "
                "(like xxxxxxxx or 12345678)")
    if len(set(value)) < _MIN_DISTINCT or _repeats_a_stretch(value):
        return "is not random: it repeats a pattern"
    return None


def secret(min_length: int = SECRET_MIN_LENGTH, min_bits: int = SECRET_MIN_BITS) -> Check:
    """A secret the operator generates: >= `min_length` characters, no placeholder or typed pattern
    (`secret_pattern`), and >= `min_bits` bits of estimated entropy (`entropy_bits`: character classes).

    The problem never quotes the value: validation shows a secret as "(secret, not shown)".
    """
    fix = f"put a random value in the vault file, generated with {_GENERATE} (then ansible-vault encrypt it)"

    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, str) or len(value) < min_length:
            return (f"is missing or shorter than {min_length} characters",
                    f"put a random value of >= {min_length} characters in the vault file "
                    f"(e.g. {_GENERATE})")
        if problem := secret_pattern(value):
            return problem, fix
        if (bits := entropy_bits(value)) < min_bits:
            return (f"is too guessable: about {bits:.0f} bits of entropy (estimated from its length and "
                    f"character classes), fewer than {min_bits}", fix)
        return None
    return check


def optional_secret(value: Any) -> tuple[str, str] | None:
    """`secret()` when set; an empty string means the feature that needs it is off."""
    return None if value == "" else secret()(value)


def issued_secret(value: Any) -> tuple[str, str] | None:
    """A credential a provider issues (an S3 access key): its format is the provider's, so only the
    placeholders of documentation examples are refused (AWS's own is AKIAIOSFODNN7EXAMPLE)."""
    if not isinstance(value, str):
        return "is not a string", "put the credential the provider issued in the vault file, quoted"
    if value and _is_placeholder(value):
        return ("is a placeholder from an example, not an issued credential",
                "put the credential your storage provider issued in the vault file")
    return None


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


def current_certificate(value: Any) -> tuple[str, str] | None:
    """A file on the control node which, if openssl reads it as a certificate, has not expired.

    Checked before any host is touched: an expired certificate would land, and every client verifying it (the
    app towards PostgreSQL, browsers towards nginx, pgBackRest's peers) would refuse the host. Whether the file
    is a certificate its service accepts is checked on the host before it lands (nginx -t, PostgreSQL's and
    pgBackRest's candidate checks), where the service's own parser decides.
    """
    if (problem := local_file(value)) is not None:
        return problem
    try:
        result = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-checkend", "0", "-in", value],
                                capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "cannot be checked for expiry: openssl is not installed", "install it (apt-get install openssl)"
    # openssl prints "notAfter=<date>" then, with -checkend, "Certificate will (not) expire".
    end = result.stdout.partition("notAfter=")[2].partition("\n")[0].strip()
    if end and result.returncode != 0:
        return f"is a certificate that expired on {end}", "renew it and point the variable at the new file"
    return None
