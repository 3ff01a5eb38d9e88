"""Configure nginx: hardened nginx.conf, the TLS certificate and key, the TalentSphere site; `nginx -t` before reload."""

from __future__ import annotations

import pathlib
from typing import Any

from pyinfra.operations import files, server, systemd

from roles.common.files import put_rendered, put_secret_local

SITE_AVAILABLE = "/etc/nginx/sites-available/talentsphere.conf"
SITE_ENABLED = "/etc/nginx/sites-enabled/talentsphere.conf"


def _source(ctx: dict[str, Any], key: str, variable: str) -> str:
    """A control-node file the inventory points at; a clear error when it is missing."""
    path = ctx["nginx"][key]
    if not path or not pathlib.Path(path).is_file():
        raise ValueError(f"{variable}={path!r} for host {ctx['host']['name']}: the file does not exist on the "
                         f"control node; set {variable} in the inventory to the path of the PEM file")
    return path


def apply(ctx: dict[str, Any]) -> None:
    nginx = ctx["nginx"]
    changes = [
        put_rendered(ctx, "nginx/nginx.conf.j2", "/etc/nginx/nginx.conf", user="root", group="root",
                     mode="640", name="Write the hardened nginx.conf (server_tokens off, 0640)"),
        files.directory(name="Create /etc/nginx/tls (root 0700)", path="/etc/nginx/tls", user="root",
                        group="root", mode="700"),
        files.put(name="Upload the TLS certificate chain", src=_source(ctx, "tls_cert_src", "tls_cert_file"),
                  dest=nginx["tls_cert_path"], user="root", group="root", mode="644"),
        put_secret_local(ctx, _source(ctx, "tls_key_src", "tls_key_file"), nginx["tls_key_path"], user="root",
                         group="root", mode="600", name="Upload the TLS private key (root 0600)"),
        put_rendered(ctx, "nginx/talentsphere.conf.j2", SITE_AVAILABLE, user="root", group="root", mode="640",
                     name="Write the TalentSphere site (TLS, headers, limit_req, upstream of every app host)"),
        files.link(name="Enable the TalentSphere site", path=SITE_ENABLED, target=SITE_AVAILABLE),
    ]

    def changed() -> bool:
        return any(change.did_change() for change in changes)

    server.shell(name="Validate the nginx configuration (nginx -t) before reloading", commands=["nginx -t -q"],
                 _if=changed)
    started = systemd.service(name="Start and enable nginx", service="nginx.service", running=True, enabled=True)
    systemd.service(name="Reload nginx because its configuration changed", service="nginx.service",
                    reloaded=True, _if=lambda: changed() and not started.did_change())
