"""The postgres role: Debian's PostgreSQL, tuned, TLS-only, least-privilege app role. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.postgres import context, manifest
from roles.postgres.variables import VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    max_hosts=1,
    max_hosts_why="PostgreSQL replication is not supported yet",
)
