"""The redis role: Debian's Redis with ACL users, private bind and a memory cap. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.redis import context, manifest
from roles.redis.variables import VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    max_hosts=1,
    max_hosts_why="Redis replication is not supported yet",
)
