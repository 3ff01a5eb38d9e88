"""Debian's Redis server, supervised by systemd."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import apt


def apply(ctx: dict[str, Any]) -> None:
    apt.packages(name="Install Redis from Debian", packages=["redis-server"])
