"""PgBouncer's files, then a reload when one changed (PgBouncer rereads its configuration, auth file and TLS
files on SIGHUP); a listener change needs a restart, which its first start makes."""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common.files import put_managed, put_path
from roles.pgbouncer import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    for path in manifest.PATHS:
        put_path(ctx, path)
    written = [put_managed(ctx, manifest.TLS_CERT, name="Install PgBouncer's TLS certificate"),
               put_managed(ctx, manifest.TLS_KEY, name="Install PgBouncer's TLS key (postgres only)"),
               put_managed(ctx, manifest.USERLIST, name="Write the auth_query user's entry"),
               put_managed(ctx, manifest.CONF,
                           name="Write pgbouncer.ini: transaction pooling of the app's database, TLS only")]
    started = systemd.service(name="Start and enable PgBouncer", service=manifest.SERVICE, running=True,
                              enabled=True)
    systemd.service(name="Reload PgBouncer because its files changed", service=manifest.SERVICE, reloaded=True,
                    _if=lambda: any(item.did_change() for item in written) and not started.did_change())
