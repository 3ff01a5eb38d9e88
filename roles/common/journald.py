"""The journal's bounds: persistent storage, a size cap and a retention time from the inventory.

The journal holds what systemd's units print (Gunicorn and the app, pgBackRest's and the deploy's units, sshd,
sudo); PostgreSQL, Redis and nginx write their own files, which logrotate bounds (docs/logs.md). A drop-in of
ours sets the journal's limits; Debian's journald.conf stays as shipped.
journald reads its configuration only at start, and restarting it is what systemd documents for a change:
services keep their log streams (their file descriptors are held by systemd across the restart).
"""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common import manifest
from roles.common.files import put_managed, put_path
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    journal = ctx["common"]["journald"]
    put_path(ctx, manifest.JOURNALD_DIR)
    landed = put_managed(ctx, manifest.JOURNALD,
                         name=f"Keep the journal on disk, at most {journal['max_use']} and "
                              f"{journal['max_retention']}")
    systemd.service(name="Restart systemd-journald: it reads its configuration only at start",
                    service="systemd-journald.service", restarted=True, _if=landed.did_change)
