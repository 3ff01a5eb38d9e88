"""redis.conf and the ACL file (hashed passwords); restart only when either changed."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from roles.common.files import put_managed


def apply(ctx: dict[str, Any]) -> None:
    # Debian's package sets the setgid bit on /etc/redis (new files keep the redis group); chmod cannot
    # clear it with a numeric mode on a directory, so asking for 0750 would report a change every time.
    files.directory(name="Make /etc/redis readable by the redis group only (2750)", path="/etc/redis",
                    user="redis", group="redis", mode="2750")
    files.directory(name="Keep the Redis data dir private to redis (0750)", path="/var/lib/redis",
                    user="redis", group="redis", mode="750")
    acl = put_managed(ctx, "redis/users.acl.j2", name="Write the ACL file: default user off, app and admin users")
    conf = put_managed(ctx, "redis/redis.conf.j2",
                       name="Write redis.conf: private bind, protected mode, maxmemory and its eviction policy")
    systemd.service(name="Run Redis at boot", service="redis-server", running=True, enabled=True)
    systemd.service(name="Restart Redis because its configuration changed", service="redis-server",
                    restarted=True, _if=any_changed(acl, conf))
