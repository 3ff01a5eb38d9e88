"""The app role: ship the release, configure it, activate it (roles/app/README.md lists every variable)."""

from pyinfra.api import deploy

from roles import host_context
from roles.app import activate, configure, install
from roles.app.defaults import DEFAULTS


@deploy("TalentSphere app", data_defaults=DEFAULTS)
def app() -> None:
    """Install the app release offline, write its config and units, migrate, switch and serve it."""
    ctx = host_context()
    release_id = install.apply(ctx)
    configured = configure.apply(ctx)
    activate.apply(ctx, release_id, configured)
