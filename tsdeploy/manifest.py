"""The one list of files the deploy writes on hosts: what, where, owner, mode, secrecy, role group.

The roles put these files (`roles.common.files.put_managed(ctx, key, name=...)`), `tsdeploy generate vm`
renders them into a bundle for hand-run hosts, and the verify drift check compares them with the hosts. A
file's content is a template under templates/ rendered with `tsdeploy.context.build_context`, or a
control-node file the inventory points at (TLS certificates and keys), copied as is.

Files the deploy edits line by line (the sysctl drop-in, via pyinfra's server.sysctl) are not here: their
content depends on the host (kernel-wide sysctls are skipped in containers).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

from tsdeploy import templating

Context = dict[str, Any]
#: A value fixed in the table, or computed from the host's context.
Value = str | Callable[[Context], str]

#: Inventory group whose hosts a role configures; None = every host.
ROLE_GROUPS: dict[str, str | None] = {"common": None, "postgres": "db", "redis": "cache", "app": "app",
                                      "nginx": "lb"}


class ManifestError(ValueError):
    """A managed file cannot be produced (unknown key, control-node file missing); the message says the fix."""


def _resolve(value: Value, ctx: Context) -> str:
    return value(ctx) if callable(value) else value


@dataclasses.dataclass(frozen=True)
class ManagedFile:
    """One file the deploy writes.

    + key: how the roles name it: the template path ("postgres/pg_hba.conf.j2") or, for a control-node
      file, "<role>/<what>" ("nginx/tls.key")
    + role: the role that writes it (common, postgres, redis, app, nginx)
    + path: absolute path on the host (`dest(ctx)` resolves it)
    + user/group/mode: owner, group and octal mode as pyinfra takes them ("640")
    + template: the template under templates/ (None for a control-node file)
    + local_key: (context section, key) holding the control-node path of a file copied as is
    + secret: the content holds a secret: never printed, diffed or left world-readable
    + when: the file is written only when this returns True for the host (optional inputs)
    """

    key: str
    role: str
    path: Value
    user: Value
    group: Value
    mode: str
    template: str | None = None
    local_key: tuple[str, str] | None = None
    secret: bool = False
    when: Callable[[Context], bool] | None = None

    @property
    def label(self) -> str:
        """Where the content comes from, for messages: the template or the context key."""
        return self.template or f"{self.local_key[0]}.{self.local_key[1]}"

    @property
    def hosts_group(self) -> str | None:
        """The inventory group whose hosts get this file (None = every host)."""
        return ROLE_GROUPS[self.role]

    def applies_to(self, ctx: Context) -> bool:
        """Whether the deploy writes this file on the host of `ctx`."""
        group = self.hosts_group
        in_group = group is None or group in ctx["host"]["groups"]
        return in_group and (self.when is None or self.when(ctx))

    def dest(self, ctx: Context) -> str:
        """The file's path on the host of `ctx`."""
        return _resolve(self.path, ctx)

    def placed(self, ctx: Context) -> Placed:
        """Destination, owner and mode for the host of `ctx`."""
        return Placed(dest=self.dest(ctx), user=_resolve(self.user, ctx),
                      group=_resolve(self.group, ctx), mode=self.mode)

    def source_path(self, ctx: Context) -> str:
        """The control-node file a non-template entry copies; a clear error when it does not exist."""
        section, key = self.local_key
        path = ctx[section][key]
        if not path or not pathlib.Path(path).is_file():
            variable = INVENTORY_VARIABLES.get(self.local_key, f"{section}.{key}")
            raise ManifestError(
                f"{variable}={path!r} for host {ctx['host']['name']}: the file does not exist on the control "
                f"node; set {variable} in the inventory to the path of the PEM file")
        return path

    def content(self, ctx: Context) -> str:
        """The file's content for the host of `ctx`: the rendered template or the control-node file."""
        if self.template is not None:
            return templating.render(self.template, ctx)
        # newline="": exactly the file's bytes, as files.put uploads them.
        with open(self.source_path(ctx), encoding="utf-8", newline="") as handle:
            return handle.read()


@dataclasses.dataclass(frozen=True)
class Placed:
    """Where a managed file lands on one host, and with which owner and mode."""

    dest: str
    user: str
    group: str
    mode: str


#: The inventory variable behind each control-node file (for error messages).
INVENTORY_VARIABLES = {
    ("common", "ca_cert_src"): "tls_ca_cert_file",
    ("postgres", "tls_cert_src"): "tls_cert_file",
    ("postgres", "tls_key_src"): "tls_key_file",
    ("nginx", "tls_cert_src"): "tls_cert_file",
    ("nginx", "tls_key_src"): "tls_key_file",
}


def _pg_conf(name: str) -> Callable[[Context], str]:
    return lambda ctx: f"{ctx['postgres']['conf_dir']}/{name}"


def _app_user(ctx: Context) -> str:
    return ctx["app"]["user"]


_UNITS = ("talentsphere.service", "talentsphere-flush-views.service", "talentsphere-flush-views.timer")

#: Every file the deploy writes, in the order the roles write them.
MANAGED_FILES: tuple[ManagedFile, ...] = (
    ManagedFile("common/sudoers.j2", "common", lambda ctx: f"/etc/sudoers.d/tsdeploy-{ctx['common']['deploy_user']}",
                "root", "root", "440", template="common/sudoers.j2"),
    ManagedFile("common/ca.pem", "common", lambda ctx: ctx["common"]["ca_cert_path"], "root", "root", "644",
                local_key=("common", "ca_cert_src"), when=lambda ctx: bool(ctx["common"]["ca_cert_src"])),
    ManagedFile("common/sshd_hardening.conf.j2", "common", "/etc/ssh/sshd_config.d/10-tsdeploy.conf",
                "root", "root", "600", template="common/sshd_hardening.conf.j2"),
    ManagedFile("common/nftables.conf.j2", "common", "/etc/nftables.conf", "root", "root", "600",
                template="common/nftables.conf.j2"),
    ManagedFile("postgres/server.crt", "postgres", _pg_conf("server.crt"), "postgres", "postgres", "644",
                local_key=("postgres", "tls_cert_src")),
    ManagedFile("postgres/server.key", "postgres", _pg_conf("server.key"), "postgres", "postgres", "600",
                local_key=("postgres", "tls_key_src"), secret=True),
    ManagedFile("postgres/tsdeploy.conf.j2", "postgres", _pg_conf("conf.d/50-tsdeploy.conf"), "postgres",
                "postgres", "640", template="postgres/tsdeploy.conf.j2"),
    ManagedFile("postgres/pg_hba.conf.j2", "postgres", _pg_conf("pg_hba.conf"), "postgres", "postgres", "600",
                template="postgres/pg_hba.conf.j2"),
    ManagedFile("redis/users.acl.j2", "redis", "/etc/redis/users.acl", "redis", "redis", "640",
                template="redis/users.acl.j2", secret=True),
    ManagedFile("redis/redis.conf.j2", "redis", "/etc/redis/redis.conf", "redis", "redis", "640",
                template="redis/redis.conf.j2"),
    ManagedFile("app/env.j2", "app", lambda ctx: ctx["app"]["env_file"], "root", _app_user, "640",
                template="app/env.j2", secret=True),
    ManagedFile("app/gunicorn.conf.py.j2", "app", lambda ctx: ctx["app"]["gunicorn_conf"], "root", _app_user,
                "640", template="app/gunicorn.conf.py.j2"),
    *(ManagedFile(f"app/{unit}.j2", "app", f"/etc/systemd/system/{unit}", "root", "root", "644",
                  template=f"app/{unit}.j2") for unit in _UNITS),
    ManagedFile("nginx/nginx.conf.j2", "nginx", "/etc/nginx/nginx.conf", "root", "root", "640",
                template="nginx/nginx.conf.j2"),
    ManagedFile("nginx/tls.crt", "nginx", lambda ctx: ctx["nginx"]["tls_cert_path"], "root", "root", "644",
                local_key=("nginx", "tls_cert_src")),
    ManagedFile("nginx/tls.key", "nginx", lambda ctx: ctx["nginx"]["tls_key_path"], "root", "root", "600",
                local_key=("nginx", "tls_key_src"), secret=True),
    ManagedFile("nginx/talentsphere.conf.j2", "nginx", "/etc/nginx/sites-available/talentsphere.conf", "root",
                "root", "640", template="nginx/talentsphere.conf.j2"),
)

_BY_KEY = {item.key: item for item in MANAGED_FILES}


def get(key: str) -> ManagedFile:
    """The manifest entry `key`; an unknown key is an error listing the known ones."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ManifestError(f"{key!r} is not in tsdeploy.manifest.MANAGED_FILES; known keys: "
                            f"{', '.join(_BY_KEY)}; fix: add an entry for the new file") from None


def files_for(ctx: Context) -> list[ManagedFile]:
    """The files the deploy writes on the host of `ctx`, in the order the roles write them."""
    return [item for item in MANAGED_FILES if item.applies_to(ctx)]


@dataclasses.dataclass(frozen=True)
class ManagedPath:
    """A directory the deploy creates, or an existing file whose owner and mode it fixes (`directory=False`).

    The roles create these with files.directory / files.file; `generate vm` needs them to place the
    managed files (e.g. /etc/nginx/tls must be 0700 before the key lands in it).
    """

    role: str
    path: Value
    user: Value
    group: Value
    mode: str
    directory: bool = True

    def applies_to(self, ctx: Context) -> bool:
        group = ROLE_GROUPS[self.role]
        return group is None or group in ctx["host"]["groups"]

    def placed(self, ctx: Context) -> Placed:
        return Placed(dest=_resolve(self.path, ctx), user=_resolve(self.user, ctx),
                      group=_resolve(self.group, ctx), mode=self.mode)


def _app_path(key: str) -> Callable[[Context], str]:
    return lambda ctx: ctx["app"][key]


#: Directories and existing files whose owner and mode the roles set, in the order the roles set them.
MANAGED_PATHS: tuple[ManagedPath, ...] = (
    ManagedPath("common", "/etc/ssl/tsdeploy", "root", "root", "755"),
    ManagedPath("common", "/etc/ssh/sshd_config", "root", "root", "600", directory=False),
    ManagedPath("postgres", lambda ctx: ctx["postgres"]["conf_dir"], "postgres", "postgres", "700"),
    ManagedPath("postgres", _pg_conf("postgresql.conf"), "postgres", "postgres", "640", directory=False),
    ManagedPath("postgres", lambda ctx: ctx["postgres"]["data_dir"], "postgres", "postgres", "700"),
    ManagedPath("redis", "/etc/redis", "redis", "redis", "2750"),
    ManagedPath("redis", "/var/lib/redis", "redis", "redis", "750"),
    ManagedPath("app", _app_path("base_dir"), "root", "root", "755"),
    ManagedPath("app", _app_path("releases_dir"), "root", "root", "755"),
    ManagedPath("app", _app_path("artifacts_dir"), "root", "root", "700"),
    ManagedPath("app", _app_path("config_dir"), "root", _app_user, "750"),
    ManagedPath("nginx", "/etc/nginx/tls", "root", "root", "700"),
)


def paths_for(ctx: Context) -> list[ManagedPath]:
    """The directories and existing files whose owner and mode the deploy sets on the host of `ctx`."""
    return [item for item in MANAGED_PATHS if item.applies_to(ctx)]


@dataclasses.dataclass(frozen=True)
class SystemUser:
    """A system user (and its same-named primary group) a role creates: no login, no home directory."""

    role: str
    name: Value
    home: str
    shell: str

    def resolve(self, ctx: Context) -> dict[str, str]:
        return {"name": _resolve(self.name, ctx), "home": self.home, "shell": self.shell}


#: System users the roles create (roles/app/install.py's server.user).
SYSTEM_USERS: tuple[SystemUser, ...] = (SystemUser("app", _app_user, "/nonexistent", "/usr/sbin/nologin"),)


def users_for(ctx: Context) -> list[dict[str, str]]:
    """The system users the deploy creates on the host of `ctx`."""
    groups = ctx["host"]["groups"]
    return [user.resolve(ctx) for user in SYSTEM_USERS
            if ROLE_GROUPS[user.role] is None or ROLE_GROUPS[user.role] in groups]


#: Debian packages each role installs (role -> packages; "{pg_version}" is the host's PostgreSQL major).
PACKAGES: dict[str, tuple[str, ...]] = {
    "common": ("sudo", "nftables", "ca-certificates"),
    "postgres": ("postgresql-{pg_version}", "postgresql-client-common"),
    "redis": ("redis-server",),
    "app": ("python3-venv",),
    "nginx": ("nginx",),
}


def packages_for(ctx: Context) -> list[str]:
    """The Debian packages the roles install on the host of `ctx`."""
    roles = [role for role, group in ROLE_GROUPS.items() if group is None or group in ctx["host"]["groups"]]
    return [name.format(pg_version=ctx["postgres"]["version"]) for role in roles for name in PACKAGES[role]]
