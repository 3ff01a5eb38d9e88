"""The backup role: pgBackRest's repository host, scheduled backups and a weekly restore drill. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.backup import context, manifest
from roles.backup.variables import CHECKS, VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=CHECKS,
    # Optional: an inventory without a backup host stays valid (PostgreSQL then does not archive its WAL).
    min_hosts=0,
    max_hosts=1,
    max_hosts_why="one repository host per stanza (pgBackRest's repository and the db host's archive_command "
                  "name exactly one)",
)
