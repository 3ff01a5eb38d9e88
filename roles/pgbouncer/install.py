"""Debian's PgBouncer (runs as postgres under systemd)."""

from __future__ import annotations

from roles.common import packages
from roles.pgbouncer import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    packages.install(name="Install PgBouncer from Debian", packages=manifest.packages(ctx))
