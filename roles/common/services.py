"""Start and restart stateless services (exporters, Prometheus, Alertmanager), retried.

On container hosts a start right after a stop, or right after a package's own start at install, can fail once
with status 219/CGROUP: the kernel has not released the unit's cgroup yet. The unit is fine, so the deploy tries
again (after `systemctl reset-failed`, which also clears a start limit an install-time crash loop left) before
it fails with the unit's journal. Stateful services (PostgreSQL, Redis) keep their own rules (restarts.py).
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus

ATTEMPTS = 3


def _retried(verb: str, service: str) -> StringCommand:
    unit = shlex.quote(service)
    script = (f"for attempt in $(seq {ATTEMPTS}); do systemctl reset-failed {unit} 2>/dev/null; "
              f"systemctl {verb} {unit} && exit 0; sleep 2; done; "
              f"echo '{service} did not {verb} ({ATTEMPTS} attempts); its journal:' >&2; "
              f"journalctl -u {unit} -n 20 --no-pager -o cat >&2; exit 1")
    return StringCommand("sh", "-c", shlex.quote(script))


@operation()
def restarted(service: str):
    """Restart `service` (hang it on a file change with `_if=`), retried as the module says."""
    yield _retried("restart", service)


@operation()
def running(service: str):
    """Keep `service` enabled at boot and running; a start is retried as the module says.

    Updates: nothing when it is enabled and running.
    """
    unit = service if service.endswith(".service") else f"{service}.service"
    if not host.get_fact(SystemdEnabled, services=unit).get(unit):
        yield StringCommand("systemctl", "enable", unit)
    if host.get_fact(SystemdStatus, services=unit).get(unit):
        host.noop(f"{service} is running")
        return
    yield _retried("start", service)
