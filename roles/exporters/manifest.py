"""What the exporters role manages: each exporter's /etc/default file (its command line) and its package."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile

NODE_SERVICE = "prometheus-node-exporter"
POSTGRES_SERVICE = "prometheus-postgres-exporter"
NGINX_SERVICE = "prometheus-nginx-exporter"


def _enabled(ctx: Context) -> bool:
    return ctx["exporters"]["enabled"]


def _default(service: str, when) -> ManagedFile:
    return ManagedFile(f"exporters/{service}.default.j2", f"/etc/default/{service}", "root", "root", "644",
                       template=f"exporters/{service}.default.j2", when=when, trigger=service)


NODE_DEFAULT = _default(NODE_SERVICE, _enabled)
POSTGRES_DEFAULT = _default(POSTGRES_SERVICE, lambda ctx: _enabled(ctx) and ctx["exporters"]["postgres"])
NGINX_DEFAULT = _default(NGINX_SERVICE, lambda ctx: _enabled(ctx) and ctx["exporters"]["nginx"])
#: Each exporter's file, with the service that reads it at start.
SERVICES = ((NODE_DEFAULT, NODE_SERVICE), (POSTGRES_DEFAULT, POSTGRES_SERVICE), (NGINX_DEFAULT, NGINX_SERVICE))
FILES = tuple(file for file, _ in SERVICES)
PATHS = ()


def packages(ctx: Context) -> list[str]:
    """Debian's exporter packages this host runs (none without a monitor host)."""
    exporters = ctx["exporters"]
    if not exporters["enabled"]:
        return []
    return [NODE_SERVICE, *([POSTGRES_SERVICE] if exporters["postgres"] else []),
            *([NGINX_SERVICE] if exporters["nginx"] else [])]
