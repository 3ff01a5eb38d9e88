"""The pgbouncer role: PgBouncer in transaction mode between the app and PostgreSQL. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.pgbouncer import context, manifest
from roles.pgbouncer.variables import VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    # Optional: without a pooler host the app connects to PostgreSQL directly, as before.
    min_hosts=0,
)
