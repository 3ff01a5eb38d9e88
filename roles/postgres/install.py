"""Debian's own PostgreSQL packages (15 on bookworm, 17 on trixie), and pgBackRest when WAL is archived."""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common import packages
from roles.postgres import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    with_pgbackrest = " and pgBackRest" if pg["archiving"] is not None else ""
    packages.install(name=f"Install PostgreSQL {pg['version']}{with_pgbackrest} from Debian",
                     packages=manifest.packages(ctx))
    systemd.service(name=f"Run the {pg['service']} cluster at boot", service=pg["service"],
                    running=True, enabled=True)
