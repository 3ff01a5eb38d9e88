"""The postgres role's operations on a db host: install, pgBackRest's db side, configure (reload/restart only when
needed), database. pgBackRest's configuration lands before the settings that make PostgreSQL archive with it."""

from pyinfra.api import deploy

from roles.postgres import ROLE, archiving, configure, database, install
from roles.runtime import host_context


@deploy("PostgreSQL", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install, configure and secure PostgreSQL, archiving its WAL with pgBackRest when the inventory has a
    backup host; create the app's role, database and extensions."""
    ctx = host_context()
    install.apply(ctx)
    archiving.apply(ctx)
    configure.apply(ctx)
    database.apply(ctx)
    archiving.wal_switch(ctx)
