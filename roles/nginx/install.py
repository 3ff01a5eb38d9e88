"""Install Debian's nginx and remove its default site (dev-sec nginx-baseline)."""

from __future__ import annotations

from pyinfra.operations import files

from roles.common import packages


def apply() -> None:
    packages.install(name="Install nginx from Debian", packages=["nginx"])
    files.link(name="Remove nginx's default site", path="/etc/nginx/sites-enabled/default", present=False)
