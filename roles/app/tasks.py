"""The app role's operations on an app host: ship the release, configure it, activate it."""

from pyinfra.api import deploy

from roles.app import ROLE, activate, configure, install
from roles.runtime import host_context


@deploy("TalentSphere app", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install the app release offline, write its config and units, migrate, switch and serve it."""
    ctx = host_context()
    release_id = install.apply(ctx)
    configured = configure.apply(ctx)
    activate.apply(ctx, release_id, configured)
