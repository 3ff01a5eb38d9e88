"""pyinfra entry point: run each role of the registry on the hosts of its inventory group, nothing else.

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py
    (or: tsdeploy deploy inventories/lab, which then activates the app hosts one at a time)

On app hosts this is the first phase: the release is installed and checked and the database migrated, but
what a host serves changes only in the second phase (roles/app/roll_deploy.py), driven by `tsdeploy deploy`.
"""

from pyinfra import host

from roles.registry import ROLES
from roles.runtime import converged, start_run

start_run()

for role in ROLES:
    if role.runs_on(host.groups):
        role.tasks()()

# Steps that reach another host's converged role (the backup host creating its stanza through the db host)
# run after a barrier that every host shares.
converged(name="Wait until every host's roles have converged")
for role in ROLES:
    if role.runs_on(host.groups) and (finish := role.finish()) is not None:
        finish()
