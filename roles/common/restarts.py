"""Restarts of stateful services (PostgreSQL, Redis) happen only by an explicit choice; else they are recorded.

A role that finds a setting its service applies only at a restart applies everything else (reload, `CONFIG
SET`, `ACL LOAD`), then restarts only when `allowed(role, policy)`: the role is named in the environment
variable TSDEPLOY_ALLOW_RESTART (comma-separated role names, set by `tsdeploy deploy --allow-restart
postgres,redis`) or the host's policy variable (`postgres_restart`, `redis_restart`) is `allow`. Otherwise the
deploy succeeds, logs a warning naming the settings, and records them on the host in a marker file:

    /var/lib/tsdeploy/pending-restart/<service>     (root, 0644)
    unit: <systemd unit>
    role: <role to name in --allow-restart>
    <setting>: <running value> -> <new value> (<why>)
    ...

The marker is removed when the service restarts through the deploy, and it is stale (not reported, removed by
the next deploy) once the unit has (re)started after the marker was written, or, for PostgreSQL, once
`pg_settings.pending_restart` is empty. `PendingRestarts` reads them: `{service: reason}`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Iterator, Mapping

from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand

#: Comma-separated role names whose service the deploy may restart (`tsdeploy deploy --allow-restart ...`).
ENV_VAR = "TSDEPLOY_ALLOW_RESTART"
#: Values of the per-role inventory policy variables `postgres_restart` and `redis_restart`.
POLICIES = ("defer", "allow")
#: Where deferred restarts are recorded on a host, one file per service.
MARKER_DIR = "/var/lib/tsdeploy/pending-restart"
#: Marker (service) name -> the role that restarts it, i.e. what `--allow-restart` takes.
SERVICES = {"postgresql": "postgres", "redis": "redis"}


def allowed(role_name: str, policy: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `role_name`'s service may be restarted: its policy is `allow`, or TSDEPLOY_ALLOW_RESTART names it.

    >>> allowed("postgres", "defer", {"TSDEPLOY_ALLOW_RESTART": "redis, postgres"})
    True
    >>> allowed("postgres", "defer", {})
    False
    """
    if policy == "allow":
        return True
    names = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return role_name in {name.strip() for name in names.split(",") if name.strip()}


def how_to_allow(role_name: str) -> str:
    return (f"run `tsdeploy deploy INVENTORY --allow-restart {role_name}` (or set {role_name}_restart: allow "
            "in the inventory)")


def policy(variable: str) -> str:
    """The current host's value of a restart policy variable (`postgres_restart`, `redis_restart`), in a run."""
    from roles.runtime import _topology  # the run's validated inventory, loaded once per pyinfra process

    return str(_topology(host.data.tsdeploy_inventory).vars_of(host.name).get(variable, "defer"))


def marker_path(service: str) -> str:
    return f"{MARKER_DIR}/{service}"


def marker_text(unit: str, role_name: str, settings: Iterable[str]) -> str:
    """The marker's content: the unit, the role, one line per setting waiting for a restart."""
    return "".join(f"{line}\n" for line in (f"unit: {unit}", f"role: {role_name}", *settings))


def reason_of(text: str) -> str:
    """A marker's settings on one line, as `PendingRestarts` reports them."""
    return "; ".join(line for line in text.splitlines()
                     if line.strip() and not line.startswith(("unit: ", "role: ")))


def _stale_test(path: str) -> str:
    """Shell: exit 0 when the marker's unit (re)started after the marker was written."""
    return (f"unit=$(sed -n 's/^unit: //p' {path} | head -n 1); "
            f"started=$(systemctl show -P ActiveEnterTimestamp \"$unit\" 2>/dev/null); "
            f"[ -n \"$unit\" ] && [ -n \"$started\" ] && "
            f"[ \"$(date -d \"$started\" +%s 2>/dev/null || echo 0)\" -gt \"$(stat -c %Y {path})\" ]")


_PG_NOTHING_PENDING = ("[ \"$(runuser -u postgres -- psql -X -A -t -q -c "
                       "'SELECT count(*) FROM pg_settings WHERE pending_restart' 2>/dev/null)\" = 0 ]")


class Marker(FactBase):
    """One service's marker: {"text": its content, "stale": the unit restarted since}; None without a marker."""

    def command(self, service: str) -> str:
        path = shlex.quote(marker_path(service))
        return (f"if [ -f {path} ]; then if {_stale_test(path)}; then echo stale; else echo current; fi; "
                f"cat {path}; fi")

    def process(self, output: list[str]) -> dict[str, object] | None:
        if not output:
            return None
        return {"stale": output[0].strip() == "stale", "text": "".join(f"{line}\n" for line in output[1:])}


class PendingRestarts(FactBase):
    """Restarts deferred on this host: {service: reason}, e.g. {"postgresql": "shared_buffers: 128MB -> 1GB
    (needs a restart)"}; {} when none. Stale markers (the unit restarted since, or PostgreSQL has no
    `pending_restart` setting) are left out. `SERVICES[service]` is the role to name in `--allow-restart`.
    """

    def default(self) -> dict[str, str]:
        return {}

    def command(self) -> str:
        return (f"for f in {MARKER_DIR}/*; do [ -f \"$f\" ] || continue; "
                f"if {_stale_test(chr(34) + '$f' + chr(34))}; then continue; fi; "
                f"service=${{f##*/}}; "
                f"if [ \"$service\" = postgresql ] && {_PG_NOTHING_PENDING}; then continue; fi; "
                "printf '%s\\t' \"$service\"; "
                "awk '!/^(unit|role): / && NF { printf \"%s%s\", sep, $0; sep = \"; \" } END { print \"\" }' \"$f\"; "
                "done; true")

    def process(self, output: list[str]) -> dict[str, str]:
        pending = {}
        for line in output:
            service, sep, reason = line.partition("\t")
            if sep and service.strip():
                pending[service.strip()] = reason.strip()
        return pending


def warn_deferred(service: str, role_name: str, settings: Iterable[str]) -> None:
    """The warning line of a deferred restart (logged once, while the deploy executes, not while it plans)."""
    if host.state.is_executing:
        logger.warning(f"{host.print_prefix}restart of {service} deferred, pending: {'; '.join(settings)} - "
                       f"{how_to_allow(role_name)}")


def record(service: str, text: str, current: Mapping[str, object] | None) -> Iterator[StringCommand]:
    """Commands writing the marker (root 0644), none when it already holds `text`: the same content is no change."""
    if current is not None and current["text"] == text:
        host.noop(f"the deferred restart of {service} is already recorded in {marker_path(service)}")
        return
    path = marker_path(service)
    yield StringCommand("install", "-d", "-m", "0755", "-o", "root", "-g", "root", MARKER_DIR)
    yield StringCommand("sh", "-c", shlex.quote(f"printf %s {shlex.quote(text)} > {path}.new && "
                                                f"chown root:root {path}.new && chmod 0644 {path}.new && "
                                                f"mv -f {path}.new {path}"))


def clear(service: str) -> StringCommand:
    return StringCommand("rm", "-f", marker_path(service))
