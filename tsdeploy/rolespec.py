"""What a role declares about itself: variables, context derivation, managed files, paths, packages, users.

Each role folder (`roles/<name>/__init__.py`) holds one `RoleSpec`. The deploy's operations, `tsdeploy
generate vm`, the verify drift check, validation and the template context all read it, so a role is read,
changed and added in one place. Nothing here knows any role by name: the registry (`roles/registry.py`)
lists the roles, their inventory groups and their order.

This module is pure (no pyinfra, no inventory loading): the control tooling imports role specs without
importing pyinfra operations.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tsdeploy import templating

if TYPE_CHECKING:
    from tsdeploy.topology import HostView, Topology

#: A host's template context: {"host": ..., "peers": ..., "<role>": <that role's context>} for its roles.
Context = dict[str, Any]
#: A value fixed in the table, or computed from the host's context.
Value = str | Callable[[Context], str]
#: The key of a host's facts (`RoleSpec.describes_host`) holding its private address: peers, firewalls and
#: URLs are built from it.
ADDRESS_FACT = "private_address"
#: A check returns None when the value is fine, else (what is wrong, how to fix it).
Check = Callable[[Any], "tuple[str, str] | None"]


class ManifestError(ValueError):
    """A managed file cannot be produced (unknown key, control-node file missing); the message says the fix."""


class _Required:
    """The default of a variable the inventory must set (a secret, an address, a host's size)."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def _resolve(value: Value, ctx: Context) -> str:
    return value(ctx) if callable(value) else value


@dataclasses.dataclass(frozen=True)
class Variable:
    """One inventory variable a role reads.

    + name: the variable's name, with the role's prefix (`postgresql_port`)
    + default: its value when the inventory does not set it; REQUIRED when the inventory must
    + doc: one line: what it does (the role's README lists the same)
    + check: validation of its value (None: any value)
    + secret: the value is never shown in errors, output or generated files without --with-secrets
    + files: it names a control-node file (a TLS certificate): skipped by readers that never open them

    A role lists every variable it reads, including another role's (the app lists PostgreSQL's password,
    importing that role's Variable): validation checks a variable on the hosts of every role that lists it.
    """

    name: str
    default: Any
    doc: str
    check: Check | None = None
    secret: bool = False
    files: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclasses.dataclass(frozen=True)
class Placed:
    """Where a managed file or path lands on one host, and with which owner and mode."""

    dest: str
    user: str
    group: str
    mode: str


@dataclasses.dataclass(frozen=True)
class ManagedFile:
    """One file the deploy writes.

    + key: how the role's operations name it: the template path ("postgres/pg_hba.conf.j2") or, for a
      control-node file, "<role>/<what>" ("nginx/tls.key"); the first part is always the role's name
    + path: absolute path on the host (`dest(ctx)` resolves it)
    + user/group/mode: owner, group and octal mode as pyinfra takes them ("640")
    + template: the template under templates/ (None for a control-node file)
    + source: for a control-node file copied as is: (context section, key) holding its path on the control
      node, and `variable`, the inventory variable that sets it (for error messages and placeholders)
    + secret: the content holds a secret: never printed, diffed or left world-readable
    + when: the file is written only when this returns True for the host (optional inputs)
    + trigger: what a change of it sets off in `generate vm`'s install.sh (default: the role's service)
    """

    key: str
    path: Value
    user: Value
    group: Value
    mode: str
    template: str | None = None
    source: tuple[str, str] | None = None
    variable: str | None = None
    secret: bool = False
    when: Callable[[Context], bool] | None = None
    trigger: str | None = None

    @property
    def role(self) -> str:
        """The role that writes it: the first part of its key."""
        return self.key.split("/", 1)[0]

    @property
    def label(self) -> str:
        """Where the content comes from, for messages: the template or the context key of the source path."""
        return self.template or f"{self.source[0]}.{self.source[1]}"

    def applies_to(self, ctx: Context) -> bool:
        """Whether the deploy writes this file on the host of `ctx` (its role runs there and `when` holds)."""
        return self.role in ctx and (self.when is None or self.when(ctx))

    def dest(self, ctx: Context) -> str:
        """The file's path on the host of `ctx`."""
        return _resolve(self.path, ctx)

    def placed(self, ctx: Context) -> Placed:
        """Destination, owner and mode for the host of `ctx`."""
        return Placed(dest=self.dest(ctx), user=_resolve(self.user, ctx),
                      group=_resolve(self.group, ctx), mode=self.mode)

    def source_path_unchecked(self, ctx: Context) -> str:
        """The control-node path a non-template entry copies, whether or not the file is there."""
        section, key = self.source
        return ctx[section][key] or ""

    def source_path(self, ctx: Context) -> str:
        """The control-node file a non-template entry copies; a clear error when it does not exist."""
        section, key = self.source
        path = ctx[section][key]
        if not path or not pathlib.Path(path).is_file():
            variable = self.variable or f"{section}.{key}"
            raise ManifestError(
                f"{variable}={path!r} for host {ctx['host']['name']}: the file does not exist on the control "
                f"node; set {variable} in the inventory to the path of the PEM file")
        return path

    def content(self, ctx: Context) -> str:
        """The file's content for the host of `ctx`: the rendered template or the control-node file."""
        if self.template is not None:
            return templating.render(self.template, ctx)
        # newline="": exactly the file's bytes, as files.put uploads them.
        with open(self.source_path(ctx), encoding="utf-8", newline="") as handle:
            return handle.read()


@dataclasses.dataclass(frozen=True)
class ManagedPath:
    """A directory the deploy creates, or an existing file whose owner and mode it fixes (`directory=False`).

    + why: the operation's reason, shown in the deploy's output ("root-owned: the app cannot change its code")
    + when: the path is managed only when this returns True for the host (like ManagedFile.when)
    """

    path: Value
    user: Value
    group: Value
    mode: str
    directory: bool = True
    why: str = ""
    when: Callable[[Context], bool] | None = None

    def applies(self, ctx: Context) -> bool:
        """Whether the deploy manages this path on the host of `ctx`."""
        return self.when is None or self.when(ctx)

    def placed(self, ctx: Context) -> Placed:
        return Placed(dest=_resolve(self.path, ctx), user=_resolve(self.user, ctx),
                      group=_resolve(self.group, ctx), mode=self.mode)


@dataclasses.dataclass(frozen=True)
class SystemUser:
    """A system user (and its same-named primary group) a role creates: no login, no home directory."""

    name: Value
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"

    def resolve(self, ctx: Context) -> dict[str, str]:
        return {"name": _resolve(self.name, ctx), "home": self.home, "shell": self.shell}


@dataclasses.dataclass(frozen=True)
class Inbound:
    """A port a role opens in the host's firewall, and the peers allowed to reach it."""

    port: int
    sources: list[str]
    why: str


@dataclasses.dataclass(frozen=True)
class RoleSpec:
    """Everything about one role except its operations (its `tasks.py`) and templates (`templates/<role>/`).

    + variables: every inventory variable the role reads, with its default, documentation and check
    + derive: pure function of the host's view of the topology -> the role's template context (a TypedDict)
    + files / paths / users: what the role manages on a host, in the order its operations manage them
    + packages: the Debian packages it installs on a host (from its context)
    + inbound: the ports it opens on its hosts (the common role's firewall collects them)
    + checks: inventory-wide rules beyond single variables (each returns problem sentences)
    + min_hosts: how many hosts its group needs (0: the role is optional, an inventory may leave it out)
    + max_hosts: how many hosts its group may have (None: any number)
    + max_hosts_why: why not more, for the error
    + describes_host: (the base role only) the host's facts from its name, groups and variables
    """

    variables: tuple[Variable, ...]
    derive: Callable[[HostView], Mapping[str, Any]]
    files: tuple[ManagedFile, ...] = ()
    paths: tuple[ManagedPath, ...] = ()
    users: tuple[SystemUser, ...] = ()
    packages: Callable[[Context], Sequence[str]] = lambda ctx: ()
    inbound: Callable[[HostView], list[Inbound]] = lambda view: []
    checks: tuple[Callable[[Topology], list[str]], ...] = ()
    min_hosts: int = 1
    max_hosts: int | None = None
    max_hosts_why: str = ""
    describes_host: Callable[[str, list[str], dict[str, Any]], dict[str, Any]] | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every variable with a default, by name (REQUIRED ones are left out)."""
        return {variable.name: variable.default for variable in self.variables if not variable.required}
