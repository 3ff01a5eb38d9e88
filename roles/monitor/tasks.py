"""The monitor role's operations on the monitor host."""

from pyinfra.api import deploy

from roles.monitor import ROLE, configure
from roles.runtime import host_context


@deploy("Monitor", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Prometheus, Alertmanager and the blackbox exporter, configured from the inventory, on localhost only."""
    configure.apply(host_context())
