"""pyinfra entry point: run each role of the registry on the hosts of its inventory group, nothing else.

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py
    (or: tsdeploy deploy inventories/lab)
"""

from pyinfra import config, host

from roles.registry import ROLES

config.SUDO = True

for role in ROLES:
    if role.runs_on(host.groups):
        role.tasks()()
