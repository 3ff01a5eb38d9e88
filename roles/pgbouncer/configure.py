"""PgBouncer's files, then a restart when its listeners changed (PgBouncer binds them only at start; Debian's
package starts it on its own configuration, so a first deploy restarts it too), else a reload when another file
changed (SIGHUP rereads the configuration, the auth file and the TLS files)."""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common.files import put_managed, put_path
from roles.pgbouncer import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    for path in manifest.PATHS:
        put_path(ctx, path)
    listeners = put_managed(ctx, manifest.LISTEN, name="Write PgBouncer's listeners: loopback and the private address")
    written = [put_managed(ctx, manifest.TLS_CERT, name="Install PgBouncer's TLS certificate"),
               put_managed(ctx, manifest.TLS_KEY, name="Install PgBouncer's TLS key (postgres only)"),
               put_managed(ctx, manifest.USERLIST, name="Write the auth_query user's entry"),
               put_managed(ctx, manifest.CONF,
                           name="Write pgbouncer.ini: transaction pooling of the app's database, TLS only")]
    started = systemd.service(name="Start and enable PgBouncer", service=manifest.SERVICE, running=True,
                              enabled=True)
    systemd.service(name="Restart PgBouncer because its listeners changed", service=manifest.SERVICE,
                    restarted=True, _if=lambda: listeners.did_change() and not started.did_change())
    systemd.service(name="Reload PgBouncer because its files changed", service=manifest.SERVICE, reloaded=True,
                    _if=lambda: (any(item.did_change() for item in written) and not listeners.did_change()
                                 and not started.did_change()))
