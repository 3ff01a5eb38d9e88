"""The app role: the TalentSphere release under Gunicorn and systemd. See README.md.

This module declares the role (`ROLE`) and imports nothing of pyinfra; its operations are in `tasks.py`.
"""

from tsdeploy.rolespec import RoleSpec

from roles.app import context, manifest
from roles.app.variables import VARIABLES, threads_problems

ROLE = RoleSpec(
    variables=VARIABLES,
    derive=context.derive,
    files=manifest.FILES,
    paths=manifest.PATHS,
    users=manifest.USERS,
    packages=manifest.packages,
    inbound=context.inbound,
    checks=(threads_problems,),
)
