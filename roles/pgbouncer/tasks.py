"""The pgbouncer role's operations on a pooler host: install, configure, reload only when a file changed."""

from pyinfra.api import deploy

from roles.pgbouncer import ROLE, configure, install
from roles.runtime import host_context


@deploy("PgBouncer", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install PgBouncer and configure transaction pooling of the app's database, TLS only."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
