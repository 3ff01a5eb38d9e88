"""Configure nginx: hardened nginx.conf, the TLS certificate and key, the TalentSphere site; `nginx -t` before reload.

Contents, paths, owners and modes of the files come from tsdeploy.manifest (shared with `generate vm` and the
verify drift check).
"""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, server, systemd

from roles.common.files import put_managed

SITE_AVAILABLE = "/etc/nginx/sites-available/talentsphere.conf"
SITE_ENABLED = "/etc/nginx/sites-enabled/talentsphere.conf"


def apply(ctx: dict[str, Any]) -> None:
    changes = [
        put_managed(ctx, "nginx/nginx.conf.j2", name="Write the hardened nginx.conf (server_tokens off, 0640)"),
        files.directory(name="Create /etc/nginx/tls (root 0700)", path="/etc/nginx/tls", user="root",
                        group="root", mode="700"),
        put_managed(ctx, "nginx/tls.crt", name="Upload the TLS certificate chain"),
        put_managed(ctx, "nginx/tls.key", name="Upload the TLS private key (root 0600)"),
        put_managed(ctx, "nginx/talentsphere.conf.j2",
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
