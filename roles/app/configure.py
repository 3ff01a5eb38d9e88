"""Configure: the env file (secrets), gunicorn.conf.py and the systemd units, all rendered from templates/app."""

from __future__ import annotations

import dataclasses
from typing import Any

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, systemd

from roles.common.files import put_managed


@dataclasses.dataclass(frozen=True)
class Configured:
    """The configuration operations whose changes decide between reload and restart."""

    env: OperationMeta
    gunicorn: OperationMeta
    units: tuple[OperationMeta, ...]


def apply(ctx: dict[str, Any]) -> Configured:
    app = ctx["app"]
    files.directory(name=f"Create {app['config_dir']} (root:talentsphere 0750)", path=app["config_dir"],
                    user="root", group=app["user"], mode="750")
    env = put_managed(ctx, "app/env.j2", name="Write the app's environment file (secrets; root:talentsphere 0640)")
    gunicorn = put_managed(ctx, "app/gunicorn.conf.py.j2", name="Write gunicorn.conf.py")
    units = tuple(
        put_managed(ctx, f"app/{unit}.j2", name=f"Install the {unit} unit")
        for unit in ("talentsphere.service", "talentsphere-flush-views.service", "talentsphere-flush-views.timer")
    )
    systemd.daemon_reload(name="Reload systemd because an app unit changed",
                          _if=lambda: any(unit.did_change() for unit in units))
    return Configured(env=env, gunicorn=gunicorn, units=units)
