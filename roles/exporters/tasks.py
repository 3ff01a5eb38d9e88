"""The exporters role's operations: install the host's exporters, configure them, restart one only when its
file changed, and give the PostgreSQL exporter its monitoring role."""

from pyinfra.api import deploy

from roles.exporters import ROLE, configure
from roles.runtime import host_context


@deploy("Exporters", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Nothing without a monitor host; else the host's exporters, listening on its private address."""
    ctx = host_context()
    if ctx["exporters"]["enabled"]:
        configure.apply(ctx)
