"""What the nginx role manages on an lb host: nginx.conf, the TLS pair, the site, its directory and package."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.nginx.context import TLS_DIR

NGINX_CONF = ManagedFile("nginx/nginx.conf.j2", "/etc/nginx/nginx.conf", "root", "root", "640",
                         template="nginx/nginx.conf.j2")
TLS_CERT = ManagedFile("nginx/tls.crt", lambda ctx: ctx["nginx"]["tls_cert_path"], "root", "root", "644",
                       source=("nginx", "tls_cert_src"), variable="tls_cert_file")
TLS_KEY = ManagedFile("nginx/tls.key", lambda ctx: ctx["nginx"]["tls_key_path"], "root", "root", "600",
                      source=("nginx", "tls_key_src"), variable="tls_key_file", secret=True)
SITE = ManagedFile("nginx/talentsphere.conf.j2", "/etc/nginx/sites-available/talentsphere.conf", "root", "root",
                   "640", template="nginx/talentsphere.conf.j2")
FILES = (NGINX_CONF, TLS_CERT, TLS_KEY, SITE)

TLS = ManagedPath(TLS_DIR, "root", "root", "700", why="holds the TLS key")
PATHS = (TLS,)

SITE_ENABLED = "/etc/nginx/sites-enabled/talentsphere.conf"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
SERVICE = "nginx.service"


def packages(ctx: Context) -> list[str]:
    return ["nginx"]
