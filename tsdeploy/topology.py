"""An inventory seen through the roles: merged variables, host facts, peers, and each role's derived context.

`Topology(inventory)` is what a role's `derive(view)` reads: `HostView` is one host's side of it (its
variables, groups, facts) plus the rest of the topology (other hosts' variables, peers, and other roles'
contexts, e.g. the app reading where PostgreSQL listens). Everything is a pure function of the inventory:
no live facts, so the deploy, `generate`, the drift check and the verify suite agree byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from roles import registry
from tsdeploy.ansible_inventory import Inventory
from tsdeploy.rolespec import ADDRESS_FACT, Context


class Topology:
    """The inventory's hosts, groups and variables as the roles see them; role contexts are computed once."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._defaults = registry.defaults()

    def hosts(self, group: str) -> list[str]:
        """The hosts of `group`, in inventory order (empty when the group has none)."""
        return self.inventory.hosts_in(group)

    def groups_of(self, host: str) -> list[str]:
        """The registry groups `host` is in, in deploy order."""
        return [str(group) for group in registry.GROUPS if host in self.inventory.hosts_in(group)]

    @functools.cache
    def vars_of(self, host: str) -> dict[str, Any]:
        """The roles' defaults < the host's inventory variables."""
        return self._defaults | self.inventory.hostvars[host]

    @functools.cache
    def facts(self, host: str) -> dict[str, Any]:
        """The host's facts (name, groups, address, size, release ...) as the base role describes them."""
        describe = registry.ROLES[0].spec.describes_host
        return describe(host, self.groups_of(host), self.vars_of(host))

    def peers(self) -> dict[str, list[dict[str, str]]]:
        """Per group, its hosts' names and private addresses."""
        return {str(group): [{"name": name, "address": self.facts(name)[ADDRESS_FACT]}
                             for name in self.hosts(group)]
                for group in registry.GROUPS}

    def view(self, host: str) -> HostView:
        return HostView(self, host)

    @functools.cache
    def role_context(self, role: str, host: str) -> Mapping[str, Any]:
        """`role`'s context on `host` (derived once per topology)."""
        return registry.role(role).spec.derive(self.view(host))

    def service(self, role: str) -> Mapping[str, Any]:
        """`role`'s context on the first host of its group: where other roles find that service."""
        entry = registry.role(role)
        hosts = self.hosts(entry.group) if entry.group is not None else self.inventory.hosts
        if not hosts:
            raise LookupError(f"no host runs the {role} role: group {entry.group!r} is empty")
        return self.role_context(role, hosts[0])

    def host_context(self, host: str) -> Context:
        """The template context of `host`: its facts, the peers, and the context of each role it runs only.

        A role's secrets therefore reach only the hosts whose files need them (the lb has no database password).
        """
        ctx: Context = {"host": self.facts(host), "peers": self.peers()}
        for entry in registry.roles_for(self.groups_of(host)):
            ctx[entry.name] = dict(self.role_context(entry.name, host))
        return ctx


class HostView:
    """One host's side of the topology, as a role's `derive` reads it."""

    def __init__(self, topology: Topology, name: str):
        self.topology = topology
        self.name = name

    @property
    def vars(self) -> dict[str, Any]:
        """This host's variables: the roles' defaults < the inventory."""
        return self.topology.vars_of(self.name)

    @property
    def facts(self) -> dict[str, Any]:
        return self.topology.facts(self.name)

    @property
    def groups(self) -> list[str]:
        return self.topology.groups_of(self.name)

    def roles(self) -> list[registry.Role]:
        """The roles that run on this host, in deploy order."""
        return registry.roles_for(self.groups)

    def addresses(self, group: str) -> list[str]:
        """The private addresses of the hosts of `group`."""
        return [self.topology.facts(name)[ADDRESS_FACT] for name in self.topology.hosts(group)]

    def service(self, role: str) -> Mapping[str, Any]:
        """Another role's context on the first host of its group (e.g. the app reading PostgreSQL's address)."""
        return self.topology.service(role)

