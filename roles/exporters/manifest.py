"""What the exporters role manages: each exporter's /etc/default file (its command line) and its package."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

NODE_SERVICE = "prometheus-node-exporter"
POSTGRES_SERVICE = "prometheus-postgres-exporter"
NGINX_SERVICE = "prometheus-nginx-exporter"
REDIS_SERVICE = "prometheus-redis-exporter"


def _enabled(ctx: Context) -> bool:
    return ctx["exporters"]["enabled"]


def _default(service: str, when) -> ManagedFile:
    return ManagedFile(f"exporters/{service}.default.j2", f"/etc/default/{service}", "root", "root", "644",
                       template=f"exporters/{service}.default.j2", when=when, trigger=service)


NODE_DEFAULT = _default(NODE_SERVICE, _enabled)
POSTGRES_DEFAULT = _default(POSTGRES_SERVICE, lambda ctx: _enabled(ctx) and ctx["exporters"]["postgres"])
NGINX_DEFAULT = _default(NGINX_SERVICE, lambda ctx: _enabled(ctx) and ctx["exporters"]["nginx"])
REDIS_DEFAULT = _default(REDIS_SERVICE, lambda ctx: _enabled(ctx) and ctx["exporters"]["redis"])
#: The exporter's Redis password: root-owned, readable by Debian's exporter user (prometheus) only.
REDIS_PASSWORD = ManagedFile("exporters/redis-exporter-password.json.j2",
                             lambda ctx: ctx["exporters"]["redis_password_file"], "root", "prometheus", "640",
                             template="exporters/redis-exporter-password.json.j2", secret=True,
                             when=lambda ctx: _enabled(ctx) and ctx["exporters"]["redis"], trigger=REDIS_SERVICE)
#: Each exporter's file, with the service that reads it at start.
SERVICES = ((NODE_DEFAULT, NODE_SERVICE), (POSTGRES_DEFAULT, POSTGRES_SERVICE), (REDIS_DEFAULT, REDIS_SERVICE),
            (NGINX_DEFAULT, NGINX_SERVICE))
FILES = (NODE_DEFAULT, POSTGRES_DEFAULT, REDIS_PASSWORD, REDIS_DEFAULT, NGINX_DEFAULT)
#: Debian's exporter packages other than Prometheus's own do not create /etc/prometheus: the Redis exporter's password
#: file goes there, with the owner and mode Debian's prometheus package gives it (the monitor host's may be the same).
CONF_DIR = ManagedPath("/etc/prometheus", "root", "root", "755", why="the Redis exporter's password file",
                       when=lambda ctx: _enabled(ctx) and ctx["exporters"]["redis"])
PATHS = (CONF_DIR,)


def packages(ctx: Context) -> list[str]:
    """Debian's exporter packages this host runs (none without a monitor host)."""
    exporters = ctx["exporters"]
    if not exporters["enabled"]:
        return []
    return [NODE_SERVICE, *([POSTGRES_SERVICE] if exporters["postgres"] else []),
            *([REDIS_SERVICE] if exporters["redis"] else []), *([NGINX_SERVICE] if exporters["nginx"] else [])]
