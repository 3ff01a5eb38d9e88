"""redis.conf and the ACL file (hashed passwords), applied to the running Redis without a restart when it can.

`live.reconcile` compares the files with the running server: runtime-settable directives are CONFIG SET, a
changed ACL file is loaded with ACL LOAD; a directive Redis reads only at start restarts it only when allowed
(TSDEPLOY_ALLOW_RESTART names `redis`, or `redis_restart: allow`), else the deploy warns and records it in
/var/lib/tsdeploy/pending-restart/redis (roles/common/restarts.py). A fresh install (Redis still on Debian's
configuration) is restarted with the deploy's files: nothing is served yet.
"""

from __future__ import annotations

from pyinfra.api import HiddenValue
from pyinfra.operations import systemd

from roles.common import restarts
from roles.common.files import private_temp_dir, put_managed, put_path
from roles.redis import live, manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    for path in manifest.PATHS:
        put_path(ctx, path)
    put_managed(ctx, manifest.TLS_CERT, name="Install Redis's TLS certificate")
    put_managed(ctx, manifest.TLS_KEY, name="Install Redis's TLS key (redis only)")
    put_managed(ctx, manifest.ACL, name="Write the ACL file: default user off, app and admin users")
    put_managed(ctx, manifest.CONF,
                name="Write redis.conf: TLS only on the private bind, protected mode, maxmemory and its eviction "
                "policy")
    redis = ctx["redis"]
    systemd.service(name="Run Redis at boot", service=manifest.SERVICE, running=True, enabled=True)
    allowed = restarts.allowed("redis", redis["restart"])
    tls = live.tls_digest(manifest.TLS_CERT.content(ctx), manifest.TLS_KEY.content(ctx))
    live.reconcile(
        name=("Apply redis.conf and the ACL file to the running Redis (CONFIG SET, ACL LOAD; restart allowed)"
              if allowed else "Apply redis.conf and the ACL file to the running Redis (CONFIG SET, ACL LOAD; "
              "a restart is deferred and recorded unless this is a fresh install)"),
        conf_text=manifest.CONF.content(ctx), acl_text=manifest.ACL.content(ctx), tls_digest=tls,
        socket=redis["socket"],
        admin_user=redis["admin_user"], admin_password=HiddenValue(redis["admin_password"]),
        temp_dir=private_temp_dir(ctx["host"]["deploy_user"]), allowed=allowed)
