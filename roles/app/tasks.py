"""The app role's first-phase operations on an app host: ship the release, stage its config, check; then migrate.

Activation (switch, start/HUP/restart, readiness) is the second phase, host by host: roles/app/roll.py.
"""

from pyinfra import host
from pyinfra.api import deploy

from roles.app import ROLE, install, prepare
from roles.app.live import Plan
from roles.runtime import host_context

#: host -> (release id, plan) from `tasks`, for `finish` on the same host (deploy.py runs both in one process).
_PREPARED: dict[str, tuple[str, Plan]] = {}


@deploy("TalentSphere app", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Install the app release offline, stage its config and units, check it."""
    ctx = host_context()
    release_id, requirements = install.apply(ctx)
    _PREPARED[host.name] = (release_id, prepare.apply(ctx, release_id, requirements))


@deploy("TalentSphere app", data_defaults=ROLE.defaults)
def finish() -> None:
    """Once every host converged (the database and its role exist): migrate once, indexes, seed, prune."""
    release_id, plan = _PREPARED[host.name]
    prepare.with_database(host_context(), release_id, plan)
