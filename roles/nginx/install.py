"""Install Debian's nginx and remove its default site (dev-sec nginx-baseline)."""

from __future__ import annotations

from pyinfra.operations import apt, files


def apply() -> None:
    apt.packages(name="Install nginx from Debian", packages=["nginx"], update=True, cache_time=86400)
    files.link(name="Remove nginx's default site", path="/etc/nginx/sites-enabled/default", present=False)
