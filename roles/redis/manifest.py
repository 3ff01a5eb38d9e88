"""What the redis role manages on a cache host: the ACL file, redis.conf, its directories and package."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

ACL = ManagedFile("redis/users.acl.j2", "/etc/redis/users.acl", "redis", "redis", "640",
                  template="redis/users.acl.j2", secret=True)
CONF = ManagedFile("redis/redis.conf.j2", "/etc/redis/redis.conf", "redis", "redis", "640",
                   template="redis/redis.conf.j2")
FILES = (ACL, CONF)

# Debian's package sets the setgid bit on /etc/redis (new files keep the redis group); chmod cannot clear it
# with a numeric mode on a directory, so asking for 0750 would report a change on every deploy.
CONF_DIR = ManagedPath("/etc/redis", "redis", "redis", "2750", why="readable by the redis group only")
DATA_DIR = ManagedPath("/var/lib/redis", "redis", "redis", "750", why="private to redis")
PATHS = (CONF_DIR, DATA_DIR)

SERVICE = "redis-server"


def packages(ctx: Context) -> list[str]:
    return ["redis-server"]
