"""Debian's own PostgreSQL packages (15 on bookworm, 17 on trixie)."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import systemd

from roles.common import packages


def apply(ctx: dict[str, Any]) -> None:
    pg = ctx["postgres"]
    packages.install(name=f"Install PostgreSQL {pg['version']} from Debian",
                     packages=[f"postgresql-{pg['version']}", "postgresql-client-common"])
    systemd.service(name=f"Run the {pg['service']} cluster at boot", service=pg["service"],
                    running=True, enabled=True)
