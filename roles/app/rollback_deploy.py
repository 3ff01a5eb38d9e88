"""pyinfra entry point of `tsdeploy rollback`: switch every app host to the release in TSDEPLOY_ROLLBACK_TO.

    TSDEPLOY_INVENTORY=inventories/lab TSDEPLOY_ROLLBACK_TO=<release id> \
        .venv/bin/pyinfra inventories/ansible.py roles/app/rollback_deploy.py --limit app
    (or: tsdeploy rollback inventories/lab [--to RELEASE], which picks the release and checks it first)
"""

import os

from pyinfra import host

from roles.app.rollback import rollback
from roles.registry import role
from roles.runtime import start_run

start_run()

if role("app").runs_on(host.groups):
    rollback(os.environ["TSDEPLOY_ROLLBACK_TO"])
