"""Roll an app host back to an installed release: validate it, switch `current`, HUP Gunicorn, wait until ready.

Run by `tsdeploy rollback` through `roles/app/rollback_deploy.py`; the control node picks the release
(`tsdeploy.artifacts.rollback_target`) from every app host's releases. Migrations are never run backwards:
the database keeps its newer schema, which the older release must accept (schema changes stay backward
compatible for one release).
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from roles.app import ROLE, manifest
from roles.app.roll import wait_ready_command
from roles.app.commands import as_app
from roles.app.release import release_dir, switch_current
from roles.runtime import host_context


@deploy("TalentSphere app rollback", data_defaults=ROLE.defaults)
def rollback(release_id: str) -> None:
    """Serve `release_id` (already installed) on this app host."""
    apply(host_context(), release_id)


def apply(ctx: dict[str, Any], release_id: str) -> None:
    app = ctx["app"]
    target = release_dir(app["releases_dir"], release_id)
    server.shell(name=f"Check release {release_id}: Gunicorn config and app import (gunicorn --check-config)",
                 commands=[as_app(app, f"{target}/bin/python", "-m", "gunicorn", "--check-config",
                                  "--config", app["gunicorn_conf"])])
    switched = switch_current(name=f"Switch {app['current_dir']} back to release {release_id}",
                              current=app["current_dir"], target=target)
    reloaded = systemd.service(name=f"Reload Gunicorn (HUP) to serve release {release_id}",
                               service=manifest.SERVICE, reloaded=True, _if=switched.did_change)
    server.shell(name=f"Wait until {app['ready_url']} serves release {release_id}",
                 commands=[wait_ready_command(app, release_id)],
                 _if=reloaded.did_change)
