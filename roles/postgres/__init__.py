"""The postgres role: Debian's PostgreSQL, tuned, TLS-only, least-privilege app role, WAL archived by pgBackRest
when the inventory has a backup host. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.postgres import context, manifest
from roles.postgres.variables import (VARIABLES, archiving_profile_problems, archiving_release_problems,
                                     owner_role_problems)

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=(owner_role_problems, archiving_profile_problems, archiving_release_problems),
    max_hosts=1,
    max_hosts_why="PostgreSQL replication is not supported yet",
)
