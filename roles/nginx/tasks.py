"""The nginx role's operations on an lb host: install, configure, validate, reload only when a file changed."""

from pyinfra.api import deploy

from roles.nginx import ROLE, configure, install
from roles.runtime import host_context


@deploy("nginx", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install nginx, drop the default site, write the hardened config and site, validate, reload."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
