"""The nginx role: TLS reverse proxy in front of every app host (roles/nginx/README.md lists every variable)."""

from pyinfra.api import deploy

from roles import host_context
from roles.nginx import configure, install
from roles.nginx.defaults import DEFAULTS


@deploy("nginx", data_defaults=DEFAULTS)
def nginx() -> None:
    """Install nginx, drop the default site, write the hardened config and site, validate, reload."""
    ctx = host_context()
    install.apply()
    configure.apply(ctx)
