"""Read an Ansible-format inventory with ansible-core's own loaders (validation is `tsdeploy.inventory.load`).

`read(path)` reads `hosts.yml` + `group_vars/` + `host_vars/` (and ansible-vault files) through
ansible-core's DataLoader, InventoryManager and VariableManager, templates every variable with ansible's
Templar (so `postgresql_app_password: "{{ vault_postgresql_app_password }}"` resolves), and returns plain
Python values plus where each value came from (file:line, from ansible's data tags), so that validation
errors can name the file. Nothing here merges YAML by hand.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import pathlib
import pwd
import re
import stat
from typing import Any

import yaml

from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.plugins.vars import host_group_vars
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import get_file_vault_secret, is_encrypted_file
from ansible.template import Templar
from ansible.vars.manager import VariableManager

# ansible-core 2.19's data tags carry each loaded value's origin (path:line:col). The module is internal to
# ansible-core, which is why the version is pinned exactly in requirements/control.txt.
from ansible._internal._datatag._tags import Origin

from roles import registry

#: Inventory file names tried in an inventory directory, in order.
HOSTS_FILES = ("hosts.yml", "hosts.yaml")
#: Connection variables kept from the `ansible_` namespace (the rest are ansible's own magic variables).
CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
                   "ansible_ssh_common_args")
#: Variables VariableManager adds for playbooks; they are not inventory settings.
MAGIC_VARS = frozenset({
    "group_names", "groups", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "playbook_dir", "omit", "ansible_facts", "ansible_version",
    "ansible_config_file", "ansible_playbook_python",
})
_VAULT_REFERENCE = re.compile(r"^\{\{\s*(vault_\w+)\s*\}\}$")


class InventoryError(Exception):
    """The inventory cannot be used; `problems` lists every problem found (not only the first)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(f"- {problem}" for problem in problems))


@dataclasses.dataclass(frozen=True)
class Inventory:
    """A loaded inventory: groups, hosts and their fully templated variables (plain Python values)."""

    path: pathlib.Path
    groups: dict[str, list[str]]
    hostvars: dict[str, dict[str, Any]]
    #: host -> variable -> "file:line" where the value was defined (for error messages).
    origins: dict[str, dict[str, str]]
    vault_password_file: pathlib.Path | None

    @property
    def hosts(self) -> list[str]:
        """Every host name, in inventory order."""
        return list(self.hostvars)

    def hosts_in(self, group: str) -> list[str]:
        """The hosts of a group (empty when the group does not exist)."""
        return list(self.groups.get(group, []))

    def groups_of(self, hostname: str) -> list[str]:
        """The registry's groups a host belongs to, in deploy order."""
        return [str(group) for group in registry.GROUPS if hostname in self.groups.get(group, [])]


def hosts_file(path: pathlib.Path) -> pathlib.Path:
    """Return the hosts file of an inventory directory (or the path itself when it is a file)."""
    if path.is_file():
        return path
    for name in HOSTS_FILES:
        candidate = path / name
        if candidate.is_file():
            return candidate
    raise InventoryError([
        f"{path}: no inventory here; fix: point at a directory with {' or '.join(HOSTS_FILES)} "
        "(see inventories/production.example/)"
    ])


def find_vault_password_file(inventory_dir: pathlib.Path, explicit: str | os.PathLike | None = None,
                             ) -> pathlib.Path | None:
    """Where the vault password is: --vault-password-file, $ANSIBLE_VAULT_PASSWORD_FILE, or ansible.cfg."""
    if explicit:
        return pathlib.Path(explicit)
    if env := os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE"):
        return pathlib.Path(env)
    cfg_path = inventory_dir / "ansible.cfg"
    if cfg_path.is_file():
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(cfg_path)
        value = cfg.get("defaults", "vault_password_file", fallback=None)
        if value:
            # Relative paths in ansible.cfg are relative to the file itself, as ansible resolves them.
            return (inventory_dir / os.path.expanduser(value)).resolve()
    return None


def _plain(value: Any) -> Any:
    """Strip ansible's tagged types so the values pickle, compare and render like ordinary Python values."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _origin(value: Any, root: pathlib.Path) -> str:
    tag = Origin.get_tag(value)
    if tag is None or not tag.path:
        return "?"
    try:
        shown = pathlib.Path(tag.path).resolve().relative_to(root.resolve().parent)
    except ValueError:
        shown = pathlib.Path(tag.path)
    return f"{shown}:{tag.line_num}" if tag.line_num else str(shown)


def _is_setting(name: str) -> bool:
    if name in MAGIC_VARS or name.startswith("vault_"):
        return False
    return not name.startswith("ansible_") or name in CONNECTION_VARS


def secret_placeholder(name: str, raw: Any) -> str:
    """`__SECRET_<vault variable>__` for a setting mapped from the vault (else `__SECRET_<setting>__`)."""
    reference = _VAULT_REFERENCE.match(str(raw).strip())
    return f"__SECRET_{reference.group(1) if reference else name}__"


class _VaultlessLoader(DataLoader):
    """A DataLoader for `secrets=False`: vault-encrypted files read as empty, so no vault password is needed."""

    def get_text_file_contents(self, file_name: str, encoding: str | None = None) -> str:
        path = self.path_dwim(file_name)
        with open(path, "rb") as handle:
            if is_encrypted_file(handle):
                return Origin(path=path).tag("{}")
        return super().get_text_file_contents(file_name, encoding)


def vault_password_file_problem(path: pathlib.Path, uid: int | None = None) -> str | None:
    """Why the vault password file may not be used (readable by others, or someone else's), or None.

    The password opens every secret of the inventory: the file must be private to the user who deploys,
    mode 0600 (or 0700 for a password script: no group or other bits) and owned by that user (`uid`, by
    default the effective user), as ssh insists for a private key.
    """
    uid = os.geteuid() if uid is None else uid
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    problems, fixes = [], []
    if mode & 0o077:
        problems.append(f"has mode {mode:04o} (group or others may read it)")
        fixes.append(f"chmod 600 {path}")
    if info.st_uid != uid:
        problems.append(f"is owned by {_user_name(info.st_uid)}, not by {_user_name(uid)} who runs the deploy")
        fixes.append(f"chown {pwd.getpwuid(uid).pw_name if _has_name(uid) else uid} {path}")
    if not problems:
        return None
    return (f"vault password file {path} {' and '.join(problems)}; it opens every secret of the inventory; "
            f"fix: {' and '.join(fixes)}")


def _has_name(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _user_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _make_loader(vault_file: pathlib.Path | None) -> DataLoader:
    loader = DataLoader()
    if vault_file is not None:
        if not vault_file.is_file():
            raise InventoryError([
                f"vault password file {vault_file} does not exist; fix: create it (mode 0600, outside the "
                "repository) or pass --vault-password-file"
            ])
        if problem := vault_password_file_problem(vault_file):
            raise InventoryError([problem])
        secret = get_file_vault_secret(filename=str(vault_file), loader=loader)
        secret.load()
        loader.set_vault_secrets([("default", secret)])
    return loader


class _TolerantLoader(yaml.SafeLoader):
    """YAML with ansible's tags (`!vault`, `!unsafe`) read as tagged values, for the plaintext-vault scan."""


class _Tagged(str):
    """A value written with an ansible tag; `tag` says which (`!vault`: encrypted inline)."""

    tag = ""


def _tagged(loader: yaml.Loader, suffix: str, node: yaml.Node) -> _Tagged:
    value = _Tagged(loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else "")
    value.tag = "!" + suffix
    return value


_TolerantLoader.add_multi_constructor("!", _tagged)


def _plain_vault_names(document: Any) -> list[str]:
    """The `vault_*` variables a parsed YAML document defines in plaintext (an inline `!vault` value is not)."""
    names: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if str(key).startswith("vault_") and not (isinstance(value, _Tagged) and value.tag == "!vault"):
                names.append(str(key))
            names.extend(_plain_vault_names(value))
    elif isinstance(document, list):
        for item in document:
            names.extend(_plain_vault_names(item))
    return names


def plaintext_vault_problems(inventory_dir: pathlib.Path, source: pathlib.Path) -> list[str]:
    """A sentence for every inventory file that defines `vault_*` variables without ansible-vault encryption.

    `vault_*` variables are the inventory's secrets (group_vars map them into the roles' settings), so a file
    that defines them in plaintext puts every secret into the repository and its copies. The files checked are
    the hosts file and every file under group_vars/ and host_vars/, as ansible reads them. The lab encrypts its
    vault like any other inventory (`tsdeploy.lab.inventory.write_inventory`), so nothing is exempt.
    """
    candidates = [source]
    for folder in ("group_vars", "host_vars"):
        if (inventory_dir / folder).is_dir():
            candidates.extend(sorted(path for path in (inventory_dir / folder).rglob("*")
                                     if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".json")))
    problems = []
    for path in candidates:
        with open(path, "rb") as handle:
            if is_encrypted_file(handle):
                continue
        try:
            documents = list(yaml.load_all(path.read_text(), Loader=_TolerantLoader))  # noqa: S506 (safe + tags)
        except (yaml.YAMLError, UnicodeDecodeError):
            continue  # ansible's own loader reports a broken file with its position
        names = sorted({name for document in documents for name in _plain_vault_names(document)})
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            problems.append(f"{path} defines {shown} in plaintext: the vault's secrets must be encrypted; "
                            f"fix: ansible-vault encrypt {path} (and rotate those secrets if the plaintext was "
                            "ever committed or shared)")
    return problems


def read(path: str | os.PathLike, vault_password_file: str | os.PathLike | None = None,
         secrets: bool = True) -> Inventory:
    """Read the inventory at `path` (a directory with hosts.yml, or the file), without validating it.

    With `secrets=False` the vault is never read (no password needed) and every secret setting
    (`roles.registry.secret_variables()`) reads `secret_placeholder(...)`, e.g. `__SECRET_vault_postgresql_app_password__`.

    Raises InventoryError listing every variable that cannot be resolved, each with its file and the fix.
    """
    path = pathlib.Path(path)
    source = hosts_file(path)
    inventory_dir = source.parent
    if plaintext := plaintext_vault_problems(inventory_dir, source):
        raise InventoryError(plaintext)
    vault_file = find_vault_password_file(inventory_dir, vault_password_file) if secrets else None
    loader = _make_loader(vault_file) if secrets else _VaultlessLoader()
    # ansible's group_vars/host_vars plugin remembers, per process, which files each directory held: a file
    # added or removed since an earlier load in this process (a long-running caller, the test session) would
    # be missed or read after it is gone. Each load lists the directories afresh.
    host_group_vars.FOUND.clear()
    try:
        manager = InventoryManager(loader=loader, sources=[str(source)])
        variables = VariableManager(loader=loader, inventory=manager)
    except AnsibleError as error:
        raise InventoryError([f"{source}: {error.message}"]) from None

    groups = {name: [host.name for host in group.get_hosts()] for name, group in manager.groups.items()
              if name not in ("all", "ungrouped")}
    hostvars: dict[str, dict[str, Any]] = {}
    origins: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for host in manager.get_hosts():
        raw = variables.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=raw)
        hostvars[host.name], origins[host.name] = {}, {}
        for name, value in raw.items():
            if not _is_setting(name):
                continue
            if not secrets and name in registry.secret_variables():
                value = secret_placeholder(name, value)
            try:
                templated = templar.template(value)
            except AnsibleError as error:
                where = _origin(value, inventory_dir)
                hint = ("; fix: add it to the vault file (ansible-vault edit) and check the vault password"
                        if "vault_" in str(value) else "; fix: define the variables it refers to")
                problems.append(f"{host.name}: {name} ({where}) cannot be resolved: {error.message}{hint}")
                continue
            hostvars[host.name][name] = _plain(templated)
            origins[host.name][name] = _origin(templated, inventory_dir)
    if problems:
        raise InventoryError(problems)

    return Inventory(path=inventory_dir, groups=groups, hostvars=hostvars, origins=origins,
                     vault_password_file=vault_file)
