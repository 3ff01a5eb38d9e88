"""The postgres role: Debian's PostgreSQL, tuned, TLS-only, least privilege. See README.md."""

from pyinfra.api import deploy

from roles import host_context
from roles.postgres import configure, database, install
from roles.postgres.defaults import DEFAULTS


@deploy("PostgreSQL", data_defaults=DEFAULTS)
def postgres() -> None:
    """Install, configure and secure PostgreSQL; create the app's role, database and extensions."""
    ctx = host_context()
    install.apply(ctx)
    configure.apply(ctx)
    database.apply(ctx)
