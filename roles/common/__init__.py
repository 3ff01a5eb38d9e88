"""The common role: every host's baseline (deploy user, sshd, nftables, sysctls, CA). See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.common import context, manifest
from roles.common.variables import VARIABLES, address_problems, syslog_forward_problems

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    describes_host=context.describe_host,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=(address_problems, syslog_forward_problems),
)
