"""redis.conf and the ACL file (hashed passwords); restart only when either changed."""

from __future__ import annotations

from pyinfra.api import HiddenValue
from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

from roles.common.files import private_temp_dir, put_managed, put_path
from roles.redis import live, manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    for path in manifest.PATHS:
        put_path(ctx, path)
    acl = put_managed(ctx, manifest.ACL, name="Write the ACL file: default user off, app and admin users")
    conf = put_managed(ctx, manifest.CONF,
                       name="Write redis.conf: private bind, protected mode, maxmemory and its eviction policy")
    redis = ctx["redis"]
    if redis["appendonly"]:
        # Before the restart: a restart that turns the AOF on would start from an empty AOF.
        live.enable_aof_before_restart(
            name="Turn on the append-only file in the running Redis (kept across the restart)",
            port=redis["port"], admin_user=redis["admin_user"], admin_password=HiddenValue(redis["admin_password"]),
            temp_dir=private_temp_dir(ctx["host"]["deploy_user"]), _if=conf.did_change)
    systemd.service(name="Run Redis at boot", service=manifest.SERVICE, running=True, enabled=True)
    systemd.service(name="Restart Redis because its configuration changed", service=manifest.SERVICE,
                    restarted=True, _if=any_changed(acl, conf))
