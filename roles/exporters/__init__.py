"""The exporters role: Debian's Prometheus exporters on every host, reachable from the monitor host only.

It does something only when the inventory has a `monitor` host: node exporter on every host, the PostgreSQL
exporter on db hosts (a least-privilege `pg_monitor` role over the local socket), the Redis exporter on cache hosts
(its own ACL user), the nginx exporter on lb hosts (nginx's stub_status on localhost). See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.exporters import context, manifest
from roles.exporters.variables import CHECKS, VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=CHECKS,
)
