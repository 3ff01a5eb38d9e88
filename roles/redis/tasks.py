"""The redis role's operations on a cache host: install, configure, restart only when a file changed."""

from pyinfra.api import deploy

from roles.redis import ROLE, configure, install
from roles.runtime import host_context


@deploy("Redis", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install Redis and configure it per the baseline: ACL file, bind, protected mode, maxmemory."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
