"""The cluster's configuration: TLS files, tuned conf.d drop-in, pg_hba, file modes; reload or restart.

Reload when a file changed; restart only when `pg_settings.pending_restart` says a setting needs it.
"""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from roles.common.files import put_managed


def apply(ctx: dict[str, Any]) -> None:
    pg = ctx["postgres"]
    conf_dir, service = pg["conf_dir"], pg["service"]
    files.directory(name="Make the cluster's config dir postgres-only (0700)", path=conf_dir,
                    user="postgres", group="postgres", mode="700")
    files.file(name="Make postgresql.conf 0640", path=f"{conf_dir}/postgresql.conf",
               user="postgres", group="postgres", mode="640")
    files.directory(name="Keep the data dir 0700", path=pg["data_dir"], user="postgres", group="postgres",
                    mode="700")
    cert = put_managed(ctx, "postgres/server.crt", name="Install the inventory's TLS certificate for PostgreSQL")
    key = put_managed(ctx, "postgres/server.key", name="Install the TLS key for PostgreSQL (0600)")
    tuned = put_managed(ctx, "postgres/tsdeploy.conf.j2", name="Write the tuned, logged, TLS-only settings drop-in")
    hba = put_managed(ctx, "postgres/pg_hba.conf.j2",
                      name="Allow only local peer and hostssl scram-sha-256 from app hosts in pg_hba.conf")
    changed = any_changed(cert, key, tuned, hba)
    server.shell(name="Reload PostgreSQL because its configuration changed",
                 commands=[f"systemctl reload {service}"], _if=changed)
    # A reload is asynchronous: give the postmaster a moment before reading pending_restart.
    server.shell(
        name="Restart PostgreSQL only if pg_settings.pending_restart says a setting needs it",
        commands=[f"sleep 2; if runuser -u postgres -- psql -XAtqc "
                  f"'SELECT bool_or(pending_restart) FROM pg_settings' | grep -qx t; "
                  f"then systemctl restart {service}; fi"],
        _if=changed,
    )
