"""What the redis role manages on a cache host: its certificate and key, the ACL file, redis.conf, its directories and package."""

from __future__ import annotations

from roles.redis.context import TLS_DIR
from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

TLS_CERT = ManagedFile("redis/server.crt", f"{TLS_DIR}/server.crt", "redis", "redis", "644",
                       source=("redis", "tls_cert_src"), variable="tls_cert_file")
TLS_KEY = ManagedFile("redis/server.key", f"{TLS_DIR}/server.key", "redis", "redis", "600",
                      source=("redis", "tls_key_src"), variable="tls_key_file", secret=True)
ACL = ManagedFile("redis/users.acl.j2", "/etc/redis/users.acl", "redis", "redis", "640",
                  template="redis/users.acl.j2", secret=True)
CONF = ManagedFile("redis/redis.conf.j2", "/etc/redis/redis.conf", "redis", "redis", "640",
                   template="redis/redis.conf.j2")
FILES = (TLS_CERT, TLS_KEY, ACL, CONF)

# Debian's package sets the setgid bit on /etc/redis (new files keep the redis group); chmod cannot clear it
# with a numeric mode on a directory, so asking for 0750 would report a change on every deploy.
CONF_DIR = ManagedPath("/etc/redis", "redis", "redis", "2750", why="readable by the redis group only")
DATA_DIR = ManagedPath("/var/lib/redis", "redis", "redis", "750", why="private to redis")
# Created inside /etc/redis, it inherits the setgid bit too.
TLS_PATH = ManagedPath(TLS_DIR, "redis", "redis", "2750", why="Redis's certificate and key: redis only")
PATHS = (CONF_DIR, TLS_PATH, DATA_DIR)

SERVICE = "redis-server"


def packages(ctx: Context) -> list[str]:
    return ["redis-server"]
