"""`tsdeploy rotate-secrets INVENTORY [--only NAME]`: new secrets rolled out host by host without an error.

Each secret that a running service checks has a fallback setting that holds a second valid value while the
switch runs, and the rotation rewrites the vault and deploys once per phase (the secrets rotated together share
the phases: phase N of each is written, then one deploy):

app_secret_key (Flask's SECRET_KEY, which signs tokens; the fallback is SECRET_KEY_FALLBACKS): a host accepts a
token signed with its key or its fallback, and the app tier restarts host by host, so
1. key = old, fallback = new: deployed, every host accepts the new key and still signs with the old one;
2. key = new, fallback = old: while the hosts switch one by one, a token a switched host signs is accepted by
   the others, and every token of the old key stays valid. The old key stays the fallback until the next
   rotation: rotate again no sooner than the tokens' lifetime (TOKEN_MAX_AGE, a day) later.

redis_app_password (the app's Redis ACL user; the fallback is a second password on the same user): a deploy
loads the cache host's ACL file before any app host switches (its first phase), so
1. password = new, fallback = old: Redis accepts both before the app hosts move to the new one, host by host;
2. fallback removed: only the new password logs in.

postgresql_app_password (the app's runtime role; PostgreSQL keeps one password per role, so the fallback is the
app's: DATABASE_PASSWORD_FALLBACK, tried when PostgreSQL refuses the first): the deploy sets the role's password
on the db host before any app host switches, so
1. password = old, fallback = new: the role keeps the old one, every app host learns the new one;
2. password = new, no fallback: the role switches first; a host not yet switched leads with the old password,
   is refused, and logs in with its fallback; then it switches too.

redis_admin_password (the deploy reads and reconfigures Redis as this user; the fallback is a second password on it):
1. password = old, fallback = new: the deploy logs in with the old one and loads an ACL file with both;
2. password = new, no fallback: the deploy logs in with the new one and loads the file without the old one.

redis_exporter_password (the Redis exporter's user, with a monitor host): like redis_app_password; the exporter
runs on the cache host and restarts after Redis loaded the ACL file in the same deploy.

postgresql_owner_password (the owner role: only the deploy's migrate, optimize-db and seed log in with it, after
the db host has its new password in the same deploy): one phase.

The vault is rewritten encrypted with its own password. If the inventory does not load with the new values
(for example the fallback is not mapped: `app_secret_key_fallback: "{{ vault_app_secret_key_fallback |
default('') }}"`), the vault is put back as it was before anything is deployed.

Without --only, every secret the vault defines is rotated (the exporter's only exists with a monitor host). Not
rotated: the backup repository's cipher passphrase (it encrypts every backup taken: a new one needs a new
repository).
"""

from __future__ import annotations

import os
import pathlib
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import yaml

from roles.registry import Group
from tsdeploy import vault
from tsdeploy.inventory import Inventory, InventoryError, load

@dataclass(frozen=True)
class Rotation:
    """A secret, its fallback setting, the groups whose hosts read them, and the (value, fallback) of each
    phase, given the old and the new value."""

    setting: str
    groups: tuple[str, ...]
    phases: Callable[[str, str], list[tuple[str, str, str]]]
    new_value: Callable[[], str]

    @property
    def key(self) -> str:
        return f"vault_{self.setting}"

    @property
    def fallback(self) -> str:
        return f"vault_{self.setting}_fallback"


def _password() -> str:
    return secrets.token_urlsafe(32)


ROTATIONS = {
    "app_secret_key": Rotation(
        "app_secret_key", (Group.APP,),
        lambda old, new: [("every app host accepts the new key, still signs with the old one", old, new),
                          ("the new key signs, the old one stays accepted", new, old)],
        lambda: secrets.token_urlsafe(48)),
    "redis_app_password": Rotation(
        "redis_app_password", (Group.CACHE, Group.APP),
        lambda old, new: [("Redis accepts both app passwords, the app hosts move to the new one", new, old),
                          ("the old Redis password removed", new, "")],
        _password),
    "postgresql_app_password": Rotation(
        "postgresql_app_password", (Group.DB, Group.APP),
        lambda old, new: [("every app host learns the new PostgreSQL password as its fallback", old, new),
                          ("PostgreSQL switches to the new password, then the app hosts one by one", new, "")],
        _password),
    "redis_admin_password": Rotation(
        "redis_admin_password", (Group.CACHE,),
        lambda old, new: [("Redis accepts both admin passwords; the deploy still logs in with the old one", old, new),
                          ("the deploy logs in with the new admin password; the old one removed", new, "")],
        _password),
    "redis_exporter_password": Rotation(
        "redis_exporter_password", (Group.CACHE,),
        lambda old, new: [("Redis accepts both exporter passwords, the exporter moves to the new one", new, old),
                          ("the old exporter password removed", new, "")],
        _password),
    "postgresql_owner_password": Rotation(
        "postgresql_owner_password", (Group.DB, Group.APP),
        lambda old, new: [("the owner role's new password (used by the deploy only)", new, "")],
        _password),
}
ROTATABLE = tuple(ROTATIONS)


class RotationError(Exception):
    """The rotation cannot go on: the message says what, where and the fix."""


@dataclass
class VaultFile:
    """The inventory's vault file that defines vault_app_secret_key, decrypted."""

    path: pathlib.Path
    password_file: pathlib.Path
    ciphertext: str
    values: dict[str, Any]

    def write(self, values: dict[str, Any]) -> None:
        """Encrypt `values` into the file atomically (same directory, same mode)."""
        text = vault.encrypt(yaml.safe_dump(values, sort_keys=False, default_flow_style=False), self.password_file)
        self._replace(text)

    def restore(self) -> None:
        self._replace(self.ciphertext)

    def _replace(self, text: str) -> None:
        mode = self.path.stat().st_mode & 0o777
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.chmod(temporary, mode)
            os.replace(temporary, self.path)
        except BaseException:
            pathlib.Path(temporary).unlink(missing_ok=True)
            raise


def find_vault_file(files: list[VaultFile], key: str) -> VaultFile:
    """The one file of `files` (`vault_files`) that defines `key`."""
    found = defining(files, key)
    if len(found) != 1:
        where = ", ".join(str(item.path) for item in found) or "no encrypted file under group_vars/ or host_vars/"
        raise RotationError(f"{key} must be defined in exactly one ansible-vault encrypted file to rotate it, "
                            f"found: {where}; fix: keep it in one vault file (group_vars/all/vault.yml)")
    return found[0]


def defining(files: list[VaultFile], key: str) -> list[VaultFile]:
    return [file for file in files if key in file.values]


def vault_files(inventory: Inventory) -> list[VaultFile]:
    """Every encrypted file under group_vars/ or host_vars/ holding a mapping, decrypted once."""
    if inventory.vault_password_file is None:
        raise RotationError(f"{inventory.path}: no vault password file (ansible.cfg vault_password_file, "
                            "$ANSIBLE_VAULT_PASSWORD_FILE or --vault-password-file); fix: point to it")
    found = []
    for folder in ("group_vars", "host_vars"):
        for path in sorted((inventory.path / folder).rglob("*")) if (inventory.path / folder).is_dir() else []:
            if not path.is_file():
                continue
            text = path.read_text(errors="replace")
            if not vault.encrypted(text):
                continue
            values = yaml.safe_load(vault.decrypt(text, inventory.vault_password_file)) or {}
            if isinstance(values, dict):
                found.append(VaultFile(path, inventory.vault_password_file, text, values))
    return found


def _check_loaded(inventory_path: pathlib.Path, vault_password_file: str | None,
                  expected: list[tuple[Rotation, str, str]]) -> None:
    """The inventory, loaded again, gives the hosts that read each secret exactly these values."""
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    for rotation, value, fallback in expected:
        name, fallback_name = rotation.setting, f"{rotation.setting}_fallback"
        for host in sorted({host for group in rotation.groups for host in loaded.hosts_in(group)}):
            values = loaded.hostvars[host]
            if values.get(name) != value or values.get(fallback_name, "") != fallback:
                raise RotationError(
                    f"{host}: after writing the vault, {name} or {fallback_name} do not come from {rotation.key} "
                    f"and {rotation.fallback}; fix: map them in group_vars/all/main.yml: "
                    f"{name}: \"{{{{ {rotation.key} }}}}\" and "
                    f"{fallback_name}: \"{{{{ {rotation.fallback} | default('') }}}}\"")


def plan(names: list[str], old: dict[str, str], new: dict[str, str]) -> list[list[tuple[Rotation, str, str, str]]]:
    """The phases of rotating `names` together: phase N holds phase N of each secret that has one."""
    phases = {name: ROTATIONS[name].phases(old[name], new[name]) for name in names}
    return [[(ROTATIONS[name], *phases[name][number]) for name in names if number < len(phases[name])]
            for number in range(max(len(steps) for steps in phases.values()))]


def rotate(inventory_path: pathlib.Path, vault_password_file: str | None, names: str | list[str],
           deploy: Callable[[str], None], new_values: dict[str, str] | None = None,
           all_defined: bool = False) -> list[str]:
    """The phases of the module docstring for the secrets `names` (all rotated together); `deploy(phase)`
    deploys the inventory as it is. `new_values` (tests) gives secrets their new value; `all_defined` leaves out
    those the vault does not define. Returns the names rotated."""
    names = [names] if isinstance(names, str) else list(names)
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    encrypted = vault_files(loaded)
    if all_defined:
        names = [name for name in names if defining(encrypted, ROTATIONS[name].key)]
    files = {name: find_vault_file(encrypted, ROTATIONS[name].key) for name in names}
    if len({file.path for file in files.values()}) > 1:
        where = ", ".join(f"{ROTATIONS[name].key} in {file.path}" for name, file in files.items())
        raise RotationError(f"the secrets to rotate are in more than one vault file ({where}); fix: rotate them "
                            "one at a time (--only NAME) or keep them in one file (group_vars/all/vault.yml)")
    file = files[names[0]]
    old = {name: file.values[ROTATIONS[name].key] for name in names}
    new = {name: (new_values or {}).get(name) or ROTATIONS[name].new_value() for name in names}
    phases = plan(names, old, new)
    for number, steps in enumerate(phases, start=1):
        before = yaml.safe_load(vault.decrypt(file.path.read_text(), file.password_file)) if number > 1 else None
        values = dict(before or file.values)
        for rotation, _what, value, fallback in steps:
            values.pop(rotation.fallback, None)
            values[rotation.key] = value
            if fallback:
                values[rotation.fallback] = fallback
        file.write(values)
        try:
            _check_loaded(inventory_path, vault_password_file,
                          [(rotation, value, fallback) for rotation, _what, value, fallback in steps])
        except (RotationError, InventoryError):
            if before is None:
                file.restore()
            else:
                file.write(before)
            raise
        what = "; ".join(f"{rotation.setting}: {what}" for rotation, what, _value, _fallback in steps)
        label = f"{number}/{len(phases)}: {what}"
        click.echo(f"==> rotate, phase {label}: {file.path} rewritten (encrypted); deploying", err=True)
        deploy(label)
    return names


@click.command("rotate-secrets")
@click.argument("inventory", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path))
@click.option("--only", "only", multiple=True, type=click.Choice(ROTATABLE),
              help="A secret to rotate (repeatable; default: all of them, in shared phases): app_secret_key "
                   "(Flask's SECRET_KEY, which signs the API's tokens), redis_app_password (the app's Redis ACL "
                   "user), redis_admin_password, redis_exporter_password, postgresql_app_password (the app's "
                   "runtime role), postgresql_owner_password (the role that owns the schema).")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
@click.pass_context
def rotate_secrets(ctx: click.Context, inventory: pathlib.Path, only: tuple[str, ...],
                   vault_password_file: str | None) -> None:
    """Rotate secrets of INVENTORY without downtime: rewrite its vault and deploy, once per phase (see the docs)."""
    from tsdeploy import deployment

    def deploy(phase: str) -> None:
        ctx.invoke(deployment.deploy, inventory=inventory, limit=(), allow_restart="",
                   vault_password_file=vault_password_file, diff=False, trust_new=False)

    try:
        names = rotate(inventory, vault_password_file, [name for name in ROTATABLE if not only or name in only],
                       deploy, all_defined=not only)
    except (RotationError, InventoryError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rotated {', '.join(names)}: only the new values log in now", err=True)
    if "app_secret_key" in names:
        click.echo("app_secret_key: tokens signed with the previous key stay valid until the next rotation; "
                   "rotate it again no sooner than the tokens' lifetime (TOKEN_MAX_AGE) from now", err=True)
