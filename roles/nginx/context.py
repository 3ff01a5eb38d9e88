"""The nginx role's context: the upstream of every app host, TLS paths, and its own settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from roles.nginx.variables import VARIABLES
from roles.registry import Group
from tsdeploy.rolespec import Inbound

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

TLS_DIR = "/etc/nginx/tls"
#: With an ACME CA: certbot's lineage for the site, the directory nginx serves HTTP-01 challenges from, and the
#: CA bundle certbot trusts for a private ACME server.
ACME_CERT_NAME = "talentsphere"
ACME_LIVE_DIR = f"/etc/letsencrypt/live/{ACME_CERT_NAME}"
ACME_WEBROOT = "/var/lib/talentsphere-acme"
ACME_CA_PATH = "/etc/letsencrypt/talentsphere-acme-ca.pem"
#: nginx's connection counters (stub_status), served on localhost only: the nginx exporter reads them there.
STATUS_LISTEN = "127.0.0.1:8089"
STATUS_URL = f"http://{STATUS_LISTEN}/stub_status"

#: `ctx["nginx"]`: server_name, upstream, upstream_keepalive_timeout, the TLS paths, and each nginx_* variable
#: without its prefix (worker_connections, api_rate, ...): the templates read the variables by those names.
NginxContext = dict[str, Any]


def inbound(view: HostView) -> list[Inbound]:
    return [Inbound(port, ["0.0.0.0/0", "::/0"], "HTTP(S) from anywhere") for port in (80, 443)]


def upstream_entry(app_vars: dict[str, Any]) -> str:
    """An app host's server in the upstream ("address:port"); a rolling deploy drains hosts by this entry."""
    return f"{app_vars['private_address']}:{int(app_vars['app_port'])}"


def site_ca(lb_vars: Mapping[str, Any]) -> str | None:
    """The control-node CA file that verifies the site's certificate, from the lb host's variables: the
    inventory's tls_ca_cert_file, or with an ACME CA its nginx_acme_ca_file; None for a public ACME CA (the
    system's trust store verifies it)."""
    if lb_vars.get("nginx_acme_directory"):
        return lb_vars.get("nginx_acme_ca_file") or None
    return lb_vars.get("tls_ca_cert_file") or None


def derive(view: HostView) -> NginxContext:
    v = view.vars
    acme = bool(v["nginx_acme_directory"])
    app_hosts = [view.topology.vars_of(name) for name in view.topology.hosts(Group.APP)]
    settings = {variable.name.removeprefix("nginx_"): v[variable.name] for variable in VARIABLES
                if variable.name.startswith("nginx_") and variable.name != "nginx_server_name"}
    return {
        "server_name": v["nginx_server_name"],
        "upstream": [upstream_entry(app) for app in app_hosts],
        # Upstream servers a rolling deploy has taken out of rotation (roles/nginx/drain.py); none otherwise.
        "drained": [],
        # nginx must drop an idle upstream connection before Gunicorn does (app_keepalive; gthread workers keep
        # connections, sync workers close them): a request sent on a connection Gunicorn is closing fails,
        # and nginx retries only idempotent ones.
        "upstream_keepalive_timeout": max(1, min((int(app["app_keepalive"]) for app in app_hosts), default=2) - 1),
        "tls_cert_src": v.get("tls_cert_file"),
        "tls_key_src": v.get("tls_key_file"),
        # With an ACME CA nginx reads two links to certbot's current files (a self-signed placeholder pair until
        # the first issuance), apart from the file pair's names, so that switching back never writes through them.
        "tls_cert_path": f"{TLS_DIR}/acme.crt" if acme else f"{TLS_DIR}/talentsphere.crt",
        "tls_key_path": f"{TLS_DIR}/acme.key" if acme else f"{TLS_DIR}/talentsphere.key",
        "acme": acme,
        "acme_cert_name": ACME_CERT_NAME,
        "acme_live_dir": ACME_LIVE_DIR,
        "acme_webroot": ACME_WEBROOT,
        "acme_ca_path": ACME_CA_PATH if v["nginx_acme_ca_file"] else "",
        "status_listen": STATUS_LISTEN,
        **settings,
    }
