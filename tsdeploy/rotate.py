"""`tsdeploy rotate-secrets INVENTORY --only NAME`: a new secret rolled out host by host without an error.

Each rotatable secret has a fallback setting that holds a second valid value while the switch runs, and the
rotation rewrites the vault and deploys once per phase:

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

The vault is rewritten encrypted with its own password. If the inventory does not load with the new values
(for example the fallback is not mapped: `app_secret_key_fallback: "{{ vault_app_secret_key_fallback |
default('') }}"`), the vault is put back as it was before anything is deployed.

Not rotated this way yet: the PostgreSQL passwords (one password per role: the switch needs two login roles
sharing the privileges) and the Redis admin and exporter passwords.
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
    """A secret, its fallback setting, the hosts that read them, and the (value, fallback) of each phase."""

    setting: str
    group: str
    phases: Callable[[str, str], list[tuple[str, str, str]]]
    new_value: Callable[[], str]

    @property
    def key(self) -> str:
        return f"vault_{self.setting}"

    @property
    def fallback(self) -> str:
        return f"vault_{self.setting}_fallback"


ROTATIONS = {
    "app_secret_key": Rotation(
        "app_secret_key", Group.APP,
        lambda old, new: [("1/2: every host accepts the new key, still signs with the old one", old, new),
                          ("2/2: the new key signs, the old one stays accepted", new, old)],
        lambda: secrets.token_urlsafe(48)),
    "redis_app_password": Rotation(
        "redis_app_password", Group.CACHE,
        lambda old, new: [("1/2: Redis accepts both passwords, the app hosts move to the new one", new, old),
                          ("2/2: the old password removed", new, "")],
        lambda: secrets.token_urlsafe(32)),
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


def find_vault_file(inventory: Inventory, key: str) -> VaultFile:
    """The encrypted file under group_vars/ or host_vars/ that defines `key`."""
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
            if isinstance(values, dict) and key in values:
                found.append(VaultFile(path, inventory.vault_password_file, text, values))
    if len(found) != 1:
        where = ", ".join(str(item.path) for item in found) or "no encrypted file under group_vars/ or host_vars/"
        raise RotationError(f"{key} must be defined in exactly one ansible-vault encrypted file to rotate it, "
                            f"found: {where}; fix: keep it in one vault file (group_vars/all/vault.yml)")
    return found[0]


def _check_loaded(inventory_path: pathlib.Path, vault_password_file: str | None, rotation: Rotation, value: str,
                  fallback: str) -> None:
    """The inventory, loaded again, gives the hosts that read the secret exactly these values."""
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    name, fallback_name = rotation.setting, f"{rotation.setting}_fallback"
    for host in loaded.hosts_in(rotation.group):
        values = loaded.hostvars[host]
        if values.get(name) != value or values.get(fallback_name, "") != fallback:
            raise RotationError(
                f"{host}: after writing the vault, {name} or {fallback_name} do not come from {rotation.key} "
                f"and {rotation.fallback}; fix: map them in group_vars/all/main.yml: "
                f"{name}: \"{{{{ {rotation.key} }}}}\" and "
                f"{fallback_name}: \"{{{{ {rotation.fallback} | default('') }}}}\"")


def rotate(inventory_path: pathlib.Path, vault_password_file: str | None, name: str,
           deploy: Callable[[str], None], new_value: str | None = None) -> None:
    """The phases of the module docstring for secret `name`; `deploy(phase)` deploys the inventory as it is."""
    rotation = ROTATIONS[name]
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    file = find_vault_file(loaded, rotation.key)
    old = file.values[rotation.key]
    new = new_value or rotation.new_value()
    for number, (what, value, fallback) in enumerate(rotation.phases(old, new)):
        before = yaml.safe_load(vault.decrypt(file.path.read_text(), file.password_file)) if number else None
        values = {k: v for k, v in file.values.items() if k != rotation.fallback}
        file.write({**values, rotation.key: value, **({rotation.fallback: fallback} if fallback else {})})
        try:
            _check_loaded(inventory_path, vault_password_file, rotation, value, fallback)
        except (RotationError, InventoryError):
            if before is None:
                file.restore()
            else:
                file.write(before)
            raise
        click.echo(f"==> rotate {name}, phase {what}: {file.path} rewritten (encrypted); deploying", err=True)
        deploy(what)


@click.command("rotate-secrets")
@click.argument("inventory", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path))
@click.option("--only", "only", required=True, type=click.Choice(ROTATABLE),
              help="The secret to rotate: app_secret_key (Flask's SECRET_KEY, which signs the API's tokens) or "
                   "redis_app_password (the app's Redis ACL user).")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
@click.pass_context
def rotate_secrets(ctx: click.Context, inventory: pathlib.Path, only: str, vault_password_file: str | None) -> None:
    """Rotate a secret of INVENTORY without downtime: rewrite its vault and deploy, twice (see the docs)."""
    from tsdeploy import deployment

    def deploy(phase: str) -> None:
        ctx.invoke(deployment.deploy, inventory=inventory, limit=(), allow_restart="",
                   vault_password_file=vault_password_file, diff=False, trust_new=False)

    try:
        rotate(inventory, vault_password_file, only, deploy)
    except (RotationError, InventoryError) as error:
        raise click.ClickException(str(error)) from None
    if only == "app_secret_key":
        click.echo("rotated app_secret_key: tokens signed with the previous key stay valid until the next rotation; "
                   "rotate again no sooner than the tokens' lifetime (TOKEN_MAX_AGE) from now", err=True)
    else:
        click.echo(f"rotated {only}: only the new value logs in now", err=True)
