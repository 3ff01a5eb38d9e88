"""Configure nginx: hardened nginx.conf, the TLS certificate and key, the TalentSphere site; `nginx -t` before reload.

Contents, paths, owners and modes of the files come from the role's manifest (shared with `generate vm` and
the verify drift check).
"""

from __future__ import annotations

from pyinfra.operations import files, server, systemd

from roles.common.files import put_managed, put_path
from roles.nginx import manifest
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    changes = [
        put_managed(ctx, manifest.NGINX_CONF, name="Write the hardened nginx.conf (server_tokens off, 0640)"),
        put_path(ctx, manifest.TLS),
        put_managed(ctx, manifest.TLS_CERT, name="Upload the TLS certificate chain"),
        put_managed(ctx, manifest.TLS_KEY, name="Upload the TLS private key (root 0600)"),
        put_managed(ctx, manifest.SITE,
                    name="Write the TalentSphere site (TLS, headers, limit_req, upstream of every app host)"),
        files.link(name="Enable the TalentSphere site", path=manifest.SITE_ENABLED, target=manifest.SITE.path),
    ]

    def changed() -> bool:
        return any(change.did_change() for change in changes)

    server.shell(name="Validate the nginx configuration (nginx -t) before reloading", commands=["nginx -t -q"],
                 _if=changed)
    started = systemd.service(name="Start and enable nginx", service=manifest.SERVICE, running=True, enabled=True)
    systemd.service(name="Reload nginx because its configuration changed", service=manifest.SERVICE,
                    reloaded=True, _if=lambda: changed() and not started.did_change())
