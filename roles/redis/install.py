"""Debian's Redis server, supervised by systemd."""

from __future__ import annotations

from roles.common import packages
from roles.redis import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    packages.install(name="Install Redis from Debian", packages=manifest.packages(ctx))
