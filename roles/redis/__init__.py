"""The redis role: Debian's Redis with ACL users, private bind and a memory cap. See README.md."""

from pyinfra.api import deploy

from roles import host_context
from roles.redis import configure, install
from roles.redis.defaults import DEFAULTS


@deploy("Redis", data_defaults=DEFAULTS)
def redis() -> None:
    """Install Redis and configure it per the baseline: ACL file, bind, protected mode, maxmemory."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
