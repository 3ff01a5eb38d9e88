"""Turn a loaded Ansible inventory into pyinfra's form: groups of host names plus SSH connection data.

Used by `inventories/ansible.py` (the pyinfra inventory file). Each host's data also carries
`tsdeploy_inventory`, the inventory path, so that `roles.runtime.host_context()` can rebuild the template context.
Host keys are always checked strictly against the inventory's known_hosts file (`tsdeploy.host_keys`):
pyinfra's own default, accept-new, would trust whichever machine answers first.
"""

from __future__ import annotations

from typing import Any

from roles import registry
from tsdeploy import host_keys
from tsdeploy.ansible_inventory import Inventory


def host_data(inventory: Inventory, hostname: str) -> dict[str, Any]:
    """pyinfra connection data for one host from its ansible_* variables."""
    hostvars = inventory.hostvars[hostname]
    data: dict[str, Any] = {
        "ssh_hostname": hostvars.get("ansible_host", hostname),
        "tsdeploy_inventory": str(inventory.path),
    }
    if "ansible_user" in hostvars:
        data["ssh_user"] = hostvars["ansible_user"]
    if "ansible_port" in hostvars:
        data["ssh_port"] = int(hostvars["ansible_port"])
    if "ansible_ssh_private_key_file" in hostvars:
        data["ssh_key"] = hostvars["ansible_ssh_private_key_file"]
    known_hosts = host_keys.pin_of(inventory, hostname).known_hosts
    if known_hosts is not None:
        data["ssh_known_hosts_file"] = str(known_hosts)
    data["ssh_strict_host_key_checking"] = host_keys.STRICT
    return data


def pinned_groups(inventory: Inventory) -> dict[str, Any]:
    """`groups()`, after refusing (HostKeyError) an inventory whose hosts' keys are not all pinned.

    What the pyinfra inventory file uses: every pyinfra run (deploy, facts, rollback, backups, or pyinfra
    by hand) stops before it connects, not only the runs `tsdeploy deploy` starts.
    """
    host_keys.require_pinned(inventory)
    return groups(inventory)


def groups(inventory: Inventory) -> dict[str, Any]:
    """pyinfra groups: `all` as (name, data) tuples, and each registry group as a list of names."""
    result: dict[str, Any] = {"all": [(name, host_data(inventory, name)) for name in inventory.hosts]}
    for group in registry.GROUPS:
        result[str(group)] = inventory.hosts_in(group)
    return result
