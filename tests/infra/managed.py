"""The files the deploy manages, per role group, and where it puts them (for the drift check).

Destinations come from the same places the roles take them: the context (`ctx["app"]["env_file"]`, ...)
or the role modules' constants. tests/unit/test_verify_catalogue.py checks that every template in
templates/ is listed here, so a new managed file cannot silently escape the drift check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from roles.common.firewall import CONF as NFTABLES_CONF
from roles.common.sshd import DROP_IN as SSHD_DROP_IN
from roles.nginx.configure import SITE_AVAILABLE as NGINX_SITE


@dataclasses.dataclass(frozen=True)
class ManagedFile:
    """A file the deploy writes: rendered from `template`, or copied from the control node (`local_key`)."""

    group: str | None  # None = every host (common role)
    dest: Callable[[dict[str, Any]], str]
    template: str | None = None
    #: (context section, key) of a control-node file copied as is (certificates).
    local_key: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        return self.template or f"{self.local_key[0]}.{self.local_key[1]}"


_UNITS = ("talentsphere.service", "talentsphere-flush-views.service", "talentsphere-flush-views.timer")

MANAGED_FILES: tuple[ManagedFile, ...] = (
    ManagedFile(None, lambda ctx: NFTABLES_CONF, "common/nftables.conf.j2"),
    ManagedFile(None, lambda ctx: SSHD_DROP_IN, "common/sshd_hardening.conf.j2"),
    ManagedFile(None, lambda ctx: f"/etc/sudoers.d/tsdeploy-{ctx['common']['deploy_user']}", "common/sudoers.j2"),
    ManagedFile("db", lambda ctx: f"{ctx['postgres']['conf_dir']}/conf.d/50-tsdeploy.conf", "postgres/tsdeploy.conf.j2"),
    ManagedFile("db", lambda ctx: f"{ctx['postgres']['conf_dir']}/pg_hba.conf", "postgres/pg_hba.conf.j2"),
    ManagedFile("db", lambda ctx: f"{ctx['postgres']['conf_dir']}/server.crt", local_key=("postgres", "tls_cert_src")),
    ManagedFile("cache", lambda ctx: "/etc/redis/redis.conf", "redis/redis.conf.j2"),
    ManagedFile("cache", lambda ctx: "/etc/redis/users.acl", "redis/users.acl.j2"),
    ManagedFile("app", lambda ctx: ctx["app"]["env_file"], "app/env.j2"),
    ManagedFile("app", lambda ctx: ctx["app"]["gunicorn_conf"], "app/gunicorn.conf.py.j2"),
    *(ManagedFile("app", lambda ctx, unit=unit: f"/etc/systemd/system/{unit}", f"app/{unit}.j2") for unit in _UNITS),
    ManagedFile("lb", lambda ctx: "/etc/nginx/nginx.conf", "nginx/nginx.conf.j2"),
    ManagedFile("lb", lambda ctx: NGINX_SITE, "nginx/talentsphere.conf.j2"),
    ManagedFile("lb", lambda ctx: ctx["nginx"]["tls_cert_path"], local_key=("nginx", "tls_cert_src")),
)


def files_for(groups: list[str]) -> list[ManagedFile]:
    """The managed files of a host in these role groups."""
    return [item for item in MANAGED_FILES if item.group is None or item.group in groups]
