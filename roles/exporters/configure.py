"""Install each exporter, write its command line, run it at boot; restart it only when its file changed.

Debian's packages start an exporter on every address at install; the firewall (common role) already drops what
the monitor host may not reach, and the restart that follows the first write moves it to the private address.
"""

from __future__ import annotations

from pyinfra.api.operation import OperationMeta

from roles.common import packages, services
from roles.common.files import put_managed, put_path
from roles.exporters import manifest
from roles.postgres import sql
from tsdeploy.rolespec import Context, ManagedFile


def apply(ctx: Context) -> None:
    exporters = ctx["exporters"]
    packages.install(name="Install the Prometheus exporters from Debian", packages=manifest.packages(ctx))
    if exporters["postgres"]:
        user = exporters["postgres_user"]
        # pg_monitor reads every statistics view and setting the exporter needs, and nothing of the data.
        sql.ensure(name=f"Give the PostgreSQL exporter its role {user}: login over the local socket, pg_monitor only",
                   database="postgres",
                   check=(f"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}' AND rolcanlogin AND NOT "
                          f"rolsuper AND NOT rolcreaterole AND NOT rolcreatedb AND pg_has_role('{user}', "
                          "'pg_monitor', 'MEMBER'))"),
                   fix=(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') THEN "
                        f"CREATE ROLE {user} LOGIN; END IF; END $$; "
                        f"ALTER ROLE {user} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB; GRANT pg_monitor TO {user}"))
    _exporter(ctx, manifest.NODE_DEFAULT, manifest.NODE_SERVICE)
    if manifest.POSTGRES_DEFAULT.applies_to(ctx):
        _exporter(ctx, manifest.POSTGRES_DEFAULT, manifest.POSTGRES_SERVICE)
    if manifest.REDIS_DEFAULT.applies_to(ctx):
        put_path(ctx, manifest.CONF_DIR)
        password = put_managed(ctx, manifest.REDIS_PASSWORD,
                               name="Write the Redis exporter's password file (its own ACL user; prometheus-readable)")
        _exporter(ctx, manifest.REDIS_DEFAULT, manifest.REDIS_SERVICE, also=password)
    if manifest.NGINX_DEFAULT.applies_to(ctx):
        _exporter(ctx, manifest.NGINX_DEFAULT, manifest.NGINX_SERVICE)


def _exporter(ctx: Context, default: ManagedFile, service: str, also: OperationMeta | None = None) -> None:
    """Write the exporter's command line; restart it when that (or `also`, a file it reads at start) changed."""
    written = put_managed(ctx, default, name=f"Write {service}'s command line: listen on the private address")
    services.restarted(name=f"Restart {service} because its command line or files changed", service=service,
                       _if=lambda: written.did_change() or (also is not None and also.did_change()))
    services.running(name=f"Run {service} at boot", service=service)
