"""The one inventory loader of the bundle: read with ansible-core's loaders, then validate with the roles' rules.

`load(path)` = `tsdeploy.ansible_inventory.read` (hosts.yml + group_vars/ + host_vars/ + ansible-vault files,
templated by ansible's Templar, with each value's file:line) + `tsdeploy.validation.validate` (every role's
variable checks and inventory-wide rules). Errors list every problem at once, each with its fix.
"""

from __future__ import annotations

import os

from tsdeploy import validation
from tsdeploy.ansible_inventory import (Inventory, InventoryError, find_vault_password_file,
                                        hosts_file, read, secret_placeholder)

__all__ = ["Inventory", "InventoryError", "find_vault_password_file", "hosts_file", "load",
           "read", "secret_placeholder"]


def load(path: str | os.PathLike, vault_password_file: str | os.PathLike | None = None,
         validate: bool = True, secrets: bool = True, files: bool = True) -> Inventory:
    """Load and (by default) validate the inventory at `path` (a directory with hosts.yml, or the file).

    With `secrets=False` the vault is never read (no password needed) and every secret setting
    (`roles.registry.secret_variables()`) reads `secret_placeholder(...)`, e.g. `__SECRET_vault_postgresql_app_password__`.
    With `files=False` the control-node files it names (TLS certificates and keys) need not exist.

    Raises InventoryError listing every problem: each names the host, the variable, the file, the bad
    value and the fix.
    """
    inventory = read(path, vault_password_file, secrets=secrets)
    if validate and (problems := validation.validate(inventory, check_secrets=secrets, check_files=files)):
        raise InventoryError(problems)
    return inventory
