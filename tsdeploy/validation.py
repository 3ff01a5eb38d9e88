"""Validate a read inventory before any connection: every problem at once, each with its fix.

The rules are the roles': each role's variables carry a check (`tsdeploy.rolespec.Variable`), and a role may
add inventory-wide checks (`RoleSpec.checks`) and a host limit for its group. A variable is checked on the
hosts of the roles that read it. Each problem names the host, the variable, where its value came from
(file:line, or the role's default), the bad value and how to fix it. Secrets are never echoed: a bad secret
is described, not shown.
"""

from __future__ import annotations

from typing import Any

from roles import registry
from tsdeploy.ansible_inventory import Inventory
from tsdeploy.rolespec import Variable
from tsdeploy.topology import Topology


def origin(inventory: Inventory, host: str, name: str) -> str:
    """Where `host`'s value of `name` came from: the inventory's file:line, or the role that defaults it."""
    if where := inventory.origins.get(host, {}).get(name):
        return where
    found = registry.variables().get(name)
    return f"roles/{found[0].name}/variables.py" if found else "?"


def variable_problem(inventory: Inventory, host: str, variable: Variable, value: Any) -> str | None:
    """The sentence for `host`'s bad value of `variable`, or None when it passes the check."""
    if variable.check is None or (found := variable.check(value)) is None:
        return None
    what, fix = found
    shown = "(secret, not shown)" if variable.secret else repr(value)
    return f"{host}: {variable.name} = {shown} ({origin(inventory, host, variable.name)}) {what}; fix: {fix}"


def passes(variable_name: str, value: Any) -> bool:
    """Whether `value` passes the check of the variable `variable_name` (cross-variable rules use it, so
    a bad value is reported once, by its own rule)."""
    variable = registry.variables()[variable_name][1]
    return variable.check is None or variable.check(value) is None


def _topology_problems(inventory: Inventory, hosts_file: str) -> list[str]:
    problems = []
    for entry in registry.ROLES:
        if entry.group is None:
            continue
        count = len(inventory.hosts_in(entry.group))
        if count < entry.spec.min_hosts:
            needed = "a host" if entry.spec.min_hosts == 1 else f"{entry.spec.min_hosts} hosts"
            problems.append(f"group {str(entry.group)!r} has {'no hosts' if not count else f'{count} hosts'} "
                            f"({hosts_file}); the {entry.name} role needs {needed}; fix: add "
                            f"{'at least one host' if entry.spec.min_hosts == 1 else 'hosts'} to it")
        limit = entry.spec.max_hosts
        if limit is not None and count > limit:
            problems.append(
                f"group {str(entry.group)!r} has {count} hosts ({hosts_file}): {entry.spec.max_hosts_why}; "
                f"fix: keep {'exactly one host' if limit == 1 else f'at most {limit} hosts'} in {str(entry.group)!r}")
    return problems


def _host_problems(inventory: Inventory, topology: Topology, host: str, check_secrets: bool,
                   check_files: bool) -> list[str]:
    problems = []
    merged = topology.vars_of(host)
    seen: set[str] = set()
    for entry in registry.roles_for(inventory.groups_of(host)):
        for variable in entry.spec.variables:
            if (variable.name in seen or (variable.secret and not check_secrets)
                    or (variable.files and not check_files)):
                continue
            seen.add(variable.name)
            if variable.name not in merged:
                # The check's own advice for a missing value is the better fix where it has one (a secret's).
                advice = variable.check(None) if variable.check else None
                fix = advice[1] if advice else "define it in group_vars or host vars (see inventories/production.example/)"
                problems.append(f"{host}: {variable.name} is not set (the {entry.name} role needs it: {variable.doc}); "
                                f"fix: {fix}")
                continue
            if problem := variable_problem(inventory, host, variable, merged[variable.name]):
                problems.append(problem)
    return problems


def validate(inventory: Inventory, check_secrets: bool = True, check_files: bool = True) -> list[str]:
    """Return every problem of the inventory as a sentence (empty list = valid).

    `check_secrets=False` skips the secret rules (an inventory read without its vault holds placeholders).
    `check_files=False` skips the control-node file rules (TLS material), for readers that never open them.
    """
    hosts_file = str(inventory.path / "hosts.yml")
    problems = _topology_problems(inventory, hosts_file)
    topology = Topology(inventory)
    for host in inventory.hosts:
        problems.extend(_host_problems(inventory, topology, host, check_secrets, check_files))
    for entry in registry.ROLES:
        for check in entry.spec.checks:
            problems.extend(check(topology))
    return problems
