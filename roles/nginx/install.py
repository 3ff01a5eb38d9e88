"""Install Debian's nginx and remove its default site (dev-sec nginx-baseline)."""

from __future__ import annotations

from pyinfra.operations import files

from roles.common import packages
from roles.nginx import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    packages.install(name=f"Install {' and '.join(manifest.packages(ctx))} from Debian",
                     packages=manifest.packages(ctx))
    files.link(name="Remove nginx's default site", path=manifest.DEFAULT_SITE, present=False)
