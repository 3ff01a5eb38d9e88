"""The app role's first-phase operations on an app host: ship the release, stage its config, check, migrate.

Activation (switch, start/HUP/restart, readiness) is the second phase, host by host: roles/app/roll.py.
"""

from pyinfra.api import deploy

from roles.app import ROLE, install, prepare
from roles.runtime import host_context


@deploy("TalentSphere app", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install the app release offline, stage its config and units, check it, migrate once."""
    ctx = host_context()
    release_id, requirements = install.apply(ctx)
    prepare.apply(ctx, release_id, requirements)
