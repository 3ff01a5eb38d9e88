"""The roles of the deploy, the inventory group each runs on, and their order: the one place groups are named.

`deploy.py`, inventory validation, the template context, the lab's topologies, `generate vm`, `generate
render` and the verify suite all iterate `ROLES`; nothing else names a group or a role list. Adding a role
is its folder (`roles/<name>/`: `__init__.py` with its RoleSpec, `tasks.py` with its operations, README.md),
its templates (`templates/<name>/`), one line here and its tests: see roles/README.md.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tsdeploy.rolespec import RoleSpec, Variable


class Group(enum.StrEnum):
    """Inventory groups (Ansible `children` of `all`); a host may be in several."""

    DB = "db"
    POOLER = "pooler"
    BACKUP = "backup"
    CACHE = "cache"
    APP = "app"
    LB = "lb"
    MONITOR = "monitor"


@dataclasses.dataclass(frozen=True)
class Role:
    """One registry line: the role's folder name and the group whose hosts it configures (None: every host)."""

    name: str
    group: Group | None

    @property
    def spec(self) -> RoleSpec:
        """The role's declarations (`roles/<name>/__init__.py` ROLE): pure, no pyinfra import."""
        return _spec(self.name)

    def tasks(self) -> Callable[[], None]:
        """The role's pyinfra @deploy function (`roles/<name>/tasks.py` `tasks`); imports pyinfra."""
        return importlib.import_module(f"roles.{self.name}.tasks").tasks

    def stage(self, name: str) -> Callable[[], None] | None:
        """The role's @deploy function `name` of `STAGES` (`roles/<name>/tasks.py`), if it has one."""
        return getattr(importlib.import_module(f"roles.{self.name}.tasks"), name, None)

    def runs_on(self, groups: Iterable[str]) -> bool:
        """Whether the role configures a host in `groups`."""
        return self.group is None or self.group in set(groups)


#: Every role, in the order the deploy runs them on a host.
ROLES: tuple[Role, ...] = (
    Role("common", None),
    Role("postgres", Group.DB),
    Role("pgbouncer", Group.POOLER),
    Role("backup", Group.BACKUP),
    Role("redis", Group.CACHE),
    Role("app", Group.APP),
    Role("nginx", Group.LB),
    # After the service roles: an exporter is configured once the service it reads is in place.
    Role("exporters", None),
    Role("monitor", Group.MONITOR),
)

#: The stages after every role's `tasks`, in order; deploy.py puts a barrier every host shares before each, so a
#: stage's operations run after every host's earlier ones. `finish`: steps that need other hosts converged (the
#: app's migrations need the database; the backup host creates its stanza through the db host). `last`: steps
#: that need every host's `finish` (the first backup needs the app's schema).
STAGES = ("finish", "last")

#: Every group a role runs on, in deploy order (each must have at least one host).
GROUPS: tuple[Group, ...] = tuple(role.group for role in ROLES if role.group is not None)


@functools.cache
def _spec(name: str) -> RoleSpec:
    return importlib.import_module(f"roles.{name}").ROLE


def role(name: str) -> Role:
    """The registry line of `name`; an unknown name is an error listing the known ones."""
    for entry in ROLES:
        if entry.name == name:
            return entry
    raise KeyError(f"role {name!r} is not in roles/registry.py ROLES; known: {', '.join(r.name for r in ROLES)}")


def roles_for(groups: Iterable[str]) -> list[Role]:
    """The roles that run on a host of `groups`, in deploy order."""
    groups = set(groups)
    return [entry for entry in ROLES if entry.runs_on(groups)]


def variables() -> dict[str, tuple[Role, Variable]]:
    """Every role's variables by name, with the role that declares it (the first role wins on a clash)."""
    found: dict[str, tuple[Role, Variable]] = {}
    for entry in ROLES:
        for variable in entry.spec.variables:
            found.setdefault(variable.name, (entry, variable))
    return found


def defaults() -> dict[str, object]:
    """Every role default by name (variables the inventory must set are left out)."""
    return {name: variable.default for name, (_, variable) in variables().items() if not variable.required}


def secret_variables() -> frozenset[str]:
    """The variables that hold secrets: never shown, and placeholders when the vault is not read."""
    return frozenset(name for name, (_, variable) in variables().items() if variable.secret)
