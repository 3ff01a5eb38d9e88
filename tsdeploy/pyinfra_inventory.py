"""Turn a loaded Ansible inventory into pyinfra's form: groups of host names plus SSH connection data.

Used by `inventories/ansible.py` (the pyinfra inventory file). Each host's data also carries
`tsdeploy_inventory`, the inventory path, so that `roles.runtime.host_context()` can rebuild the template context.
"""

from __future__ import annotations

import shlex
from typing import Any

from roles import registry
from tsdeploy.ansible_inventory import Inventory


def _ssh_options(common_args: str) -> dict[str, str]:
    """`-o Key=Value` pairs from ansible_ssh_common_args (the lab pins its known_hosts file there)."""
    options: dict[str, str] = {}
    words = shlex.split(common_args)
    for flag, value in zip(words, words[1:]):
        if flag == "-o" and "=" in value:
            key, _, option = value.partition("=")
            options[key.lower()] = option
    return options


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
    options = _ssh_options(hostvars.get("ansible_ssh_common_args", ""))
    if "userknownhostsfile" in options:
        data["ssh_known_hosts_file"] = options["userknownhostsfile"]
    if "stricthostkeychecking" in options:
        data["ssh_strict_host_key_checking"] = options["stricthostkeychecking"]
    return data


def groups(inventory: Inventory) -> dict[str, Any]:
    """pyinfra groups: `all` as (name, data) tuples, and each registry group as a list of names."""
    result: dict[str, Any] = {"all": [(name, host_data(inventory, name)) for name in inventory.hosts]}
    for group in registry.GROUPS:
        result[str(group)] = inventory.hosts_in(group)
    return result
