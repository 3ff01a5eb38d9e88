"""The nginx role: TLS reverse proxy in front of every app host. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.nginx import context, manifest
from roles.nginx.variables import VARIABLES, acme_problems

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=(acme_problems,),
)
