"""The lab's generated secrets: created once per lab, kept 0600 in its state directory."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tsdeploy.lab.system import write_private

SECRET_NAMES = (
    "vault_postgresql_app_password",
    "vault_postgresql_owner_password",
    "vault_redis_app_password",
    "vault_redis_admin_password",
    "vault_app_secret_key",
    "vault_backup_repo_cipher_pass",
    "vault_redis_exporter_password",
    "vault_pgbouncer_auth_password",
)


def ensure_secrets(state_dir: Path) -> dict[str, str]:
    """Return the lab's secrets, generating any that are missing (existing ones never change)."""
    path = state_dir / "secrets.json"
    current: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    missing = [name for name in SECRET_NAMES if not current.get(name)]
    if missing or not path.is_file():
        current.update({name: secrets.token_urlsafe(32) for name in missing})
        write_private(path, json.dumps(current, indent=2) + "\n")
    return {name: current[name] for name in SECRET_NAMES}


def ensure_vault_password(state_dir: Path) -> Path:
    """Return the path of the lab's ansible-vault password file, creating it once."""
    path = state_dir / "vault-pass"
    if not path.is_file():
        write_private(path, secrets.token_urlsafe(48) + "\n")
    return path
