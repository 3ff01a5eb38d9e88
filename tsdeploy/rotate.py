"""`tsdeploy rotate-secrets INVENTORY --only app_secret_key`: a new Flask SECRET_KEY without logging anyone out.

A token is valid on a host when that host signs with its key or lists it in SECRET_KEY_FALLBACKS. Switching
every host at once is impossible (the app tier restarts host by host), so the rotation takes two deploys:

1. the vault gets the new key as `vault_app_secret_key_fallback`; deployed, every host still signs with the
   old key and now also accepts the new one;
2. the vault swaps them (new key signs, old key is the fallback); deployed host by host, a token signed by a
   host already switched is accepted by one not yet switched, and every token of the old key stays valid.

The old key stays the fallback until the next rotation: run the next one no sooner than the tokens' lifetime
(the app's TOKEN_MAX_AGE, a day by default) after this one, or tokens signed before this rotation are refused.
The vault is rewritten encrypted with its own password; if the inventory does not load with the new values
(the mapping `app_secret_key_fallback: "{{ vault_app_secret_key_fallback | default('') }}"` is missing, say)
the vault is put back as it was before anything is deployed.

Only app_secret_key rotates this way so far: the database and Redis passwords need two credentials per user
during the switch (two PostgreSQL roles, two Redis ACL passwords), which the roles do not manage yet.
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

KEY, FALLBACK = "vault_app_secret_key", "vault_app_secret_key_fallback"
ROTATABLE = ("app_secret_key",)


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


def find_vault_file(inventory: Inventory) -> VaultFile:
    """The encrypted file under group_vars/ or host_vars/ that defines vault_app_secret_key."""
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
            if isinstance(values, dict) and KEY in values:
                found.append(VaultFile(path, inventory.vault_password_file, text, values))
    if len(found) != 1:
        where = ", ".join(str(item.path) for item in found) or "no encrypted file under group_vars/ or host_vars/"
        raise RotationError(f"{KEY} must be defined in exactly one ansible-vault encrypted file to rotate it, "
                            f"found: {where}; fix: keep it in one vault file (group_vars/all/vault.yml)")
    return found[0]


def _check_loaded(inventory_path: pathlib.Path, vault_password_file: str | None, key: str, fallback: str) -> None:
    """The inventory, loaded again, gives every app host exactly these values."""
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    for host in loaded.hosts_in(Group.APP):
        values = loaded.hostvars[host]
        if values.get("app_secret_key") != key or values.get("app_secret_key_fallback", "") != fallback:
            raise RotationError(
                f"{host}: after writing the vault, app_secret_key or app_secret_key_fallback do not come from "
                f"{KEY} and {FALLBACK}; fix: map them in group_vars/all/main.yml: "
                f"app_secret_key: \"{{{{ {KEY} }}}}\" and "
                f"app_secret_key_fallback: \"{{{{ {FALLBACK} | default('') }}}}\"")


def rotate_app_secret_key(inventory_path: pathlib.Path, vault_password_file: str | None,
                          deploy: Callable[[str], None], new_key: str | None = None) -> None:
    """The two phases of the module docstring; `deploy(phase)` deploys the inventory as it then is."""
    loaded = load(inventory_path, vault_password_file=vault_password_file)
    file = find_vault_file(loaded)
    old = file.values[KEY]
    new = new_key or secrets.token_urlsafe(48)
    phases = (("1/2: every host accepts the new key, still signs with the old one", old, new),
              ("2/2: the new key signs, the old one stays accepted", new, old))
    for number, (what, key, fallback) in enumerate(phases):
        before = vault.decrypt(file.path.read_text(), file.password_file) if number else None
        file.write({**file.values, KEY: key, FALLBACK: fallback})
        try:
            _check_loaded(inventory_path, vault_password_file, key, fallback)
        except (RotationError, InventoryError):
            if before is None:
                file.restore()
            else:
                file.write(yaml.safe_load(before))
            raise
        click.echo(f"==> rotate app_secret_key, phase {what}: {file.path} rewritten (encrypted); deploying",
                   err=True)
        deploy(what)


@click.command("rotate-secrets")
@click.argument("inventory", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path))
@click.option("--only", "only", required=True, type=click.Choice(ROTATABLE),
              help="The secret to rotate (app_secret_key: Flask's SECRET_KEY, which signs the API's tokens).")
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
        rotate_app_secret_key(inventory, vault_password_file, deploy)
    except (RotationError, InventoryError) as error:
        raise click.ClickException(str(error)) from None
    click.echo("rotated app_secret_key: tokens signed with the previous key stay valid until the next rotation; "
               "rotate again no sooner than the tokens' lifetime (TOKEN_MAX_AGE) from now", err=True)
