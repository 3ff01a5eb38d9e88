"""The cluster's configuration: TLS files, tuned conf.d drop-in, pg_hba, file modes; reload or restart.

Reload when a file changed, and wait until the postmaster has re-read its files (a reload is only a SIGHUP).
When a setting in the files needs a restart (checked on every deploy from PostgreSQL's own views, see
`sql.restart_if_settings_need_it`), restart only when allowed (TSDEPLOY_ALLOW_RESTART or `postgres_restart:
allow`, after `postgres -C` checked the files); else warn and record it (roles/common/restarts.py).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import server
from pyinfra.operations.util import any_changed

from roles.common import restarts
from roles.common.files import put_managed, put_path
from roles.postgres import manifest, sql
from tsdeploy.rolespec import Context

#: How long the reload waits for the postmaster to re-read its files (pg_conf_load_time advances).
RELOAD_TIMEOUT_SECONDS = 60


def _reload_and_wait(service: str) -> str:
    """A shell command: reload the cluster, then wait until pg_conf_load_time() shows the files were re-read."""
    load_time = f"{sql.PSQL} -d postgres -c 'SELECT pg_conf_load_time()'"
    return (f"before=$({load_time}) && systemctl reload {service} && "
            f"for _ in $(seq {RELOAD_TIMEOUT_SECONDS * 2}); do "
            f"[ \"$({load_time})\" != \"$before\" ] && exit 0; sleep 0.5; done; "
            f"echo '{service} did not re-read its configuration within {RELOAD_TIMEOUT_SECONDS} s' >&2; exit 1")


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    conf_dir, service = pg["conf_dir"], pg["service"]
    for path in manifest.PATHS:
        put_path(ctx, path)
    cert = put_managed(ctx, manifest.SERVER_CERT, name="Install the inventory's TLS certificate for PostgreSQL")
    key = put_managed(ctx, manifest.SERVER_KEY, name="Install the TLS key for PostgreSQL (0600)")
    tuned = put_managed(ctx, manifest.SETTINGS, name="Write the tuned, logged, TLS-only settings drop-in")
    hba = put_managed(ctx, manifest.PG_HBA,
                      name="Allow only local peer and hostssl scram-sha-256 from app hosts in pg_hba.conf")
    server.shell(name="Reload PostgreSQL because its configuration changed (and wait until it has)",
                 commands=[_reload_and_wait(service)], _if=any_changed(cert, key, tuned, hba))
    # A restart only by an explicit choice (TSDEPLOY_ALLOW_RESTART / postgres_restart: allow); else recorded.
    # A cluster without the app's database serves nobody yet (a first install on Debian's defaults): its
    # first configuration needs a restart (listen_addresses, ssl, shared_buffers) and costs no request.
    first = not host.get_fact(sql.PsqlQuery, database="postgres",
                              query=f"SELECT 1 FROM pg_database WHERE datname = '{pg['db_name']}'")
    allowed = first or restarts.allowed("postgres", restarts.policy("postgres_restart"))
    sql.restart_if_settings_need_it(
        name=("Restart PostgreSQL for its first configuration (no app database yet)" if first else
              "Restart PostgreSQL if a setting in its files needs a restart (allowed)" if allowed else
              "Restart PostgreSQL if a setting needs it: not allowed, so record it as pending instead"),
        service=service, postgres_bin=f"/usr/lib/postgresql/{pg['version']}/bin/postgres",
        config_file=f"{conf_dir}/postgresql.conf", allowed=allowed,
        reasons={item["name"]: item["reason"] for item in pg["settings"]})
