"""The deploy user: passwordless sudo through a validated sudoers drop-in, and its private upload dir."""

from __future__ import annotations

from pyinfra.operations import files, server

from roles.common import manifest, packages
from roles.common.files import put_managed, put_path
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    user = ctx["common"]["deploy_user"]
    packages.install(name="Install sudo, nftables and the CA tooling", packages=manifest.packages(ctx))
    server.user(name=f"Keep the deploy user {user} with a login shell", user=user, shell="/bin/bash",
                ensure_home=True)
    put_managed(ctx, manifest.SUDOERS, name=f"Grant {user} passwordless sudo in a sudoers drop-in")
    files.directory(name="Create the root of the deploy users' private upload dirs",
                    path=manifest.UPLOAD_ROOT, user="root", group="root", mode="755")
    files.directory(name=f"Create {user}'s private 0700 upload dir for secret files",
                    path=manifest.private_temp_dir(user), user=user, group=user, mode="700")
    put_path(ctx, manifest.CA_DIR)
    if manifest.CA_CERT.applies_to(ctx):
        put_managed(ctx, manifest.CA_CERT, name="Install the inventory's CA certificate for TLS clients")
