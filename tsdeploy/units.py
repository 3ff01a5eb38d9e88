"""The one parser for human sizes ("16GB", "512MB", "64kb", "2GiB") and their exact formatting.

Every size the bundle reads goes through `parse_size`: the inventory's `host_memory` and `redis_maxmemory`
(tsdeploy.validation, tsdeploy.context) and `tsdeploy tune --memory`, so a value one accepts the others accept,
with the same byte value and the same error.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
# A whole number, then optionally B, or K/M/G/T followed by nothing, "B" or "iB" (the IEC spelling).
_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(I?B)?|(B))?\s*$", re.IGNORECASE)

#: The accepted forms, as every size error names them.
SIZE_FORMS = ("a positive whole number of bytes, or a whole number and a unit, like 16GB, 512MB or 2GiB "
              "(B, kB, MB, GB, TB, or KiB, MiB, GiB, TiB; case-insensitive, 1024-based as in postgresql.conf)")


def parse_size(value: object) -> int:
    """Return the size in bytes; raise ValueError naming the accepted forms (`SIZE_FORMS`).

    Units are 1024-based, as PostgreSQL reads them in postgresql.conf and as PGTune's SIZE_UNIT_MAP is, so
    "GiB" and "GB" are the same unit. An int is taken as bytes already; a bool is not a size.

    >>> parse_size("4GB"), parse_size("512mb"), parse_size("2 GiB"), parse_size(1024)
    (4294967296, 536870912, 2147483648, 1024)
    """
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number, factor = value, 1
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        prefix = match.group(2)
        number, factor = int(match.group(1)), _UNITS[f"{prefix.upper()}B" if prefix else ""]
    if number is None or number <= 0:
        raise ValueError(f"cannot read size {value!r}: expected {SIZE_FORMS}")
    return number * factor


def format_size(size: int) -> str:
    """Return the largest exact unit form of a size in bytes, as Redis and PostgreSQL accept it ("4GB")."""
    for unit in ("TB", "GB", "MB", "KB"):
        factor = _UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
