"""pyinfra entry point: run each role of the registry on the hosts of its inventory group, nothing else.

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py
    (or: tsdeploy deploy inventories/lab, which then activates the app hosts one at a time)

On app hosts this is the first phase: the release is installed and checked and the database migrated, but
what a host serves changes only in the second phase (roles/app/roll_deploy.py), driven by `tsdeploy deploy`.
"""

from pyinfra import host

from roles.registry import ROLES, STAGES
from roles.runtime import converged, start_run

start_run()

for role in ROLES:
    if role.runs_on(host.groups):
        role.tasks()()

# Steps that reach another host's converged role (migrations, the backup stanza, the first backup) run in
# stages, each after a barrier that every host shares (roles/registry.py STAGES).
for stage in STAGES:
    converged(name=f"Wait until every host is ready for the {stage} stage")
    for role in ROLES:
        if role.runs_on(host.groups) and (step := role.stage(stage)) is not None:
            step()
