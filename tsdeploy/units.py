"""Parse the human sizes used in inventories ("4GB", "512MB", "64kb") into bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B?)\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Return the size in bytes; raise ValueError naming the accepted forms.

    >>> parse_size("4GB"), parse_size("512mb"), parse_size(1024)
    (4294967296, 536870912, 1024)
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{value!r} is not a positive size")
        return value
    match = _SIZE.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a size")
    unit = match.group(2).upper()
    if unit and not unit.endswith("B"):
        unit += "B"
    return int(match.group(1)) * _UNITS[unit]


def format_size(size: int) -> str:
    """Return the largest exact unit form of a size in bytes, as Redis and PostgreSQL accept it ("4GB")."""
    for unit in ("TB", "GB", "MB", "KB"):
        factor = _UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
