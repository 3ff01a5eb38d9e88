"""Debian's pgBackRest and, on a repository host that serves no PostgreSQL, the db host's PostgreSQL binaries for
the restore drill, installed without the cluster Debian would otherwise create and start."""

from __future__ import annotations

from roles.backup import manifest
from roles.common import packages
from roles.common.files import put_managed, put_path
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    backup = ctx["backup"]
    for path in manifest.PRE_PACKAGE_PATHS:
        put_path(ctx, path)
    if manifest.CREATECLUSTER.applies_to(ctx):
        # Before the package: postgresql-<v>'s postinst creates and starts a "main" cluster unless told not to.
        put_managed(ctx, manifest.CREATECLUSTER,
                    name=f"Keep postgresql-{backup['pg_version']} from creating a cluster on this host "
                         "(its binaries serve only the restore drill)")
    what = ("pgBackRest" if backup["local"] else
            f"pgBackRest and PostgreSQL {backup['pg_version']}'s binaries (for the restore drill)")
    packages.install(name=f"Install {what} from Debian", packages=manifest.packages(ctx))
