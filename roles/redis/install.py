"""Debian's Redis server, supervised by systemd."""

from __future__ import annotations

from typing import Any

from roles.common import packages


def apply(ctx: dict[str, Any]) -> None:
    packages.install(name="Install Redis from Debian", packages=["redis-server"])
