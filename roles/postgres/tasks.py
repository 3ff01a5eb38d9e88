"""The postgres role's operations on a db host: install, configure (reload/restart only when needed), database."""

from pyinfra.api import deploy

from roles.postgres import ROLE, configure, database, install
from roles.runtime import host_context


@deploy("PostgreSQL", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install, configure and secure PostgreSQL; create the app's role, database and extensions."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
    database.apply(ctx)
