"""The deploy user: passwordless sudo through a validated sudoers drop-in, and its private upload dir."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, server

from roles.common import packages
from roles.common.files import private_temp_dir, put_managed


def apply(ctx: dict[str, Any]) -> None:
    user = ctx["common"]["deploy_user"]
    packages.install(name="Install sudo, nftables and the CA tooling", packages=["sudo", "nftables", "ca-certificates"])
    server.user(name=f"Keep the deploy user {user} with a login shell", user=user, shell="/bin/bash",
                ensure_home=True)
    put_managed(ctx, "common/sudoers.j2", name=f"Grant {user} passwordless sudo in a sudoers drop-in")
    files.directory(name="Create the root of the deploy users' private upload dirs",
                    path="/var/lib/tsdeploy-upload", user="root", group="root", mode="755")
    files.directory(name=f"Create {user}'s private 0700 upload dir for secret files",
                    path=private_temp_dir(user), user=user, group=user, mode="700")
    files.directory(name="Create the directory for the inventory's CA certificate",
                    path="/etc/ssl/tsdeploy", user="root", group="root", mode="755")
    if ctx["common"]["ca_cert_src"]:
        put_managed(ctx, "common/ca.pem", name="Install the inventory's CA certificate for TLS clients")
