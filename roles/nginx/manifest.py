"""What the nginx role manages on an lb host: nginx.conf, the TLS pair, the site, its directory and package; with
an ACME CA, certbot's hook and trust instead of the TLS pair."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.nginx.context import ACME_WEBROOT, TLS_DIR


def _acme(ctx: Context) -> bool:
    return bool(ctx["nginx"]["acme"])


def _files(ctx: Context) -> bool:
    return not ctx["nginx"]["acme"]


def _acme_ca(ctx: Context) -> bool:
    return bool(ctx["nginx"]["acme"] and ctx["nginx"]["acme_ca_path"])


NGINX_CONF = ManagedFile("nginx/nginx.conf.j2", "/etc/nginx/nginx.conf", "root", "root", "640",
                         template="nginx/nginx.conf.j2")
TLS_CERT = ManagedFile("nginx/tls.crt", lambda ctx: ctx["nginx"]["tls_cert_path"], "root", "root", "644",
                       source=("nginx", "tls_cert_src"), variable="tls_cert_file", when=_files)
TLS_KEY = ManagedFile("nginx/tls.key", lambda ctx: ctx["nginx"]["tls_key_path"], "root", "root", "600",
                      source=("nginx", "tls_key_src"), variable="tls_key_file", secret=True, when=_files)
SITE = ManagedFile("nginx/talentsphere.conf.j2", "/etc/nginx/sites-available/talentsphere.conf", "root", "root",
                   "640", template="nginx/talentsphere.conf.j2")
#: With an ACME CA: the CA bundle certbot trusts for a private ACME server, the unit drop-in that gives it to the
#: renewals certbot.timer starts, and the hook that has nginx read a renewed certificate.
ACME_CA = ManagedFile("nginx/acme-ca.pem", lambda ctx: ctx["nginx"]["acme_ca_path"], "root", "root", "644",
                      source=("nginx", "acme_ca_file"), variable="nginx_acme_ca_file", when=_acme_ca,
                      trigger="certbot")
CERTBOT_ENV = ManagedFile("nginx/certbot.service.conf.j2", "/etc/systemd/system/certbot.service.d/talentsphere.conf",
                          "root", "root", "644", template="nginx/certbot.service.conf.j2", when=_acme_ca,
                          trigger="certbot")
RENEW_HOOK = ManagedFile("nginx/acme-reload-nginx.sh.j2", "/etc/letsencrypt/renewal-hooks/deploy/talentsphere-nginx",
                         "root", "root", "755", template="nginx/acme-reload-nginx.sh.j2", when=_acme,
                         trigger="certbot")
FILES = (NGINX_CONF, TLS_CERT, TLS_KEY, SITE, ACME_CA, CERTBOT_ENV, RENEW_HOOK)

TLS = ManagedPath(TLS_DIR, "root", "root", "700", why="holds the TLS key")
ACME_CHALLENGES = ManagedPath(ACME_WEBROOT, "root", "root", "755", when=_acme,
                              why="certbot writes the HTTP-01 challenges here, nginx serves them on port 80")
PATHS = (TLS, ACME_CHALLENGES)

SITE_ENABLED = "/etc/nginx/sites-enabled/talentsphere.conf"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
SERVICE = "nginx.service"


CERTBOT_TIMER = "certbot.timer"


def packages(ctx: Context) -> list[str]:
    return ["nginx", "certbot"] if ctx["nginx"]["acme"] else ["nginx"]
