"""pyinfra inventory for any Ansible-format inventory directory (hosts.yml + group_vars + vault).

    TSDEPLOY_INVENTORY=inventories/lab .venv/bin/pyinfra inventories/ansible.py deploy.py

The directory defaults to inventories/lab; the vault password file comes from --vault-password-file of
`tsdeploy deploy`, $ANSIBLE_VAULT_PASSWORD_FILE, or the inventory's ansible.cfg. The inventory is validated,
and every host's SSH key must be pinned in its known_hosts file (tsdeploy.host_keys), before pyinfra connects
to anything. pyinfra reads each module-level list as a group: `all`, and one per
group of the roles' registry (db, cache, app, lb, ...).
"""

import os as _os

from tsdeploy import ansible_import as _ansible_import

_ansible_import.quietly()

from tsdeploy.inventory import load as _load  # noqa: E402  (after the quiet import of ansible-core)
from tsdeploy.pyinfra_inventory import pinned_groups as _groups  # noqa: E402

globals().update(_groups(_load(_os.environ.get("TSDEPLOY_INVENTORY", "inventories/lab"))))
