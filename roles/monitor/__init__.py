"""The monitor role: Prometheus, Alertmanager and the blackbox exporter from Debian on the monitor host,
scraping every host's exporters and the app over the private network, with the bundle's alert rules. See
README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.monitor import context, manifest
from roles.monitor.variables import CHECKS, VARIABLES

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    checks=CHECKS,
    # Optional: an inventory without a monitor host deploys no exporter either.
    min_hosts=0,
    max_hosts=1,
    max_hosts_why="one Prometheus per inventory (two would page twice: Alertmanager clustering is not set up)",
)
