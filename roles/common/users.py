"""The deploy user: passwordless sudo through a sudoers drop-in checked with visudo before it lands, and its
private upload dir."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pyinfra.operations import files, server

from roles.common import manifest, packages
from roles.common.files import Check, put_checked, put_managed, put_path
from tsdeploy.rolespec import Context


def _visudo(paths: Mapping[str, str]) -> str:
    # -f: check this file alone, not /etc/sudoers (which would read the live drop-in, not the candidate).
    return "\n".join(f"visudo -c -f {shlex.quote(path)} || exit 1" for path in paths.values())


#: A sudoers file with a syntax error can make sudo refuse everything, the deploy user included: it is checked
#: with `visudo -c -f` while it is still a candidate.
VISUDO = Check(tool="visudo -c", script=_visudo,
               hint="correct templates/common/sudoers.j2 (or the deploy_user variable) and deploy again")


def apply(ctx: Context) -> None:
    user = ctx["common"]["deploy_user"]
    packages.install(name=f"Install {', '.join(manifest.packages(ctx))}", packages=manifest.packages(ctx))
    server.user(name=f"Keep the deploy user {user} with a login shell", user=user, shell="/bin/bash",
                ensure_home=True)
    files.directory(name="Create the root of the deploy users' private upload dirs",
                    path=manifest.UPLOAD_ROOT, user="root", group="root", mode="755")
    files.directory(name=f"Create {user}'s private 0700 upload dir for secret files",
                    path=manifest.private_temp_dir(user), user=user, group=user, mode="700")
    put_checked(ctx, [manifest.SUDOERS], check=VISUDO, name=f"Grant {user} passwordless sudo in a sudoers drop-in")
    put_path(ctx, manifest.CA_DIR)
    if manifest.CA_CERT.applies_to(ctx):
        put_managed(ctx, manifest.CA_CERT, name="Install the inventory's CA certificate for TLS clients")
