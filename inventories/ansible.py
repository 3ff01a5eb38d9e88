"""pyinfra inventory for any Ansible-format inventory directory (hosts.yml + group_vars + vault).

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py

The directory defaults to inventories/lab; the vault password file comes from --vault-password-file of
`tsdeploy deploy`, $ANSIBLE_VAULT_PASSWORD_FILE, or the inventory's ansible.cfg. The inventory is validated
before pyinfra connects to anything.
"""

import os as _os

from tsdeploy import ROOT as _ROOT
from tsdeploy.inventory import load as _load
from tsdeploy.pyinfra_inventory import groups as _groups

_GROUPS = _groups(_load(_os.environ.get("TSDEPLOY_INVENTORY", str(_ROOT / "inventories" / "lab"))))

all = _GROUPS["all"]  # noqa: A001 - pyinfra reads the module-level name `all` as the host list
db = _GROUPS["db"]
cache = _GROUPS["cache"]
app = _GROUPS["app"]
lb = _GROUPS["lb"]
