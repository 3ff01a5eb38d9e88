"""Configure: the env file (secrets), gunicorn.conf.py and the systemd units, all rendered from templates/app."""

from __future__ import annotations

import dataclasses

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import systemd

from roles.app import manifest
from roles.common.files import put_managed, put_path
from tsdeploy.rolespec import Context


@dataclasses.dataclass(frozen=True)
class Configured:
    """The configuration operations whose changes decide between reload and restart."""

    env: OperationMeta
    gunicorn: OperationMeta
    units: tuple[OperationMeta, ...]


def apply(ctx: Context) -> Configured:
    put_path(ctx, manifest.CONFIG)
    env = put_managed(ctx, manifest.ENV, name="Write the app's environment file (secrets; root:talentsphere 0640)")
    gunicorn = put_managed(ctx, manifest.GUNICORN, name="Write gunicorn.conf.py")
    units = tuple(put_managed(ctx, unit, name=f"Install the {unit.dest(ctx).rsplit('/', 1)[-1]} unit")
                  for unit in manifest.UNITS)
    systemd.daemon_reload(name="Reload systemd because an app unit changed",
                          _if=lambda: any(unit.did_change() for unit in units))
    return Configured(env=env, gunicorn=gunicorn, units=units)
