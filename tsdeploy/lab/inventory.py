"""Write the lab's Ansible inventory (hosts.yml, group_vars, vault, ansible.cfg) as docs/contracts.md says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from ansible.errors import AnsibleError

from roles.registry import GROUPS
from tsdeploy import vault

HOST_MEMORY = "2GB"  # hosts see the machine's whole RAM, so the lab states each host's size here
HOST_CPUS = 2
APP_SEED_JOBS = 2000
HEADER = "# Written by `tsdeploy lab up` for lab {name}; rewritten on every lab up, removed by lab down.\n"
# Role variables that take their value from the vault, the usual Ansible vault_ indirection.
VAULT_REFERENCES = {
    "postgresql_app_password": "vault_postgresql_app_password",
    "postgresql_owner_password": "vault_postgresql_owner_password",
    "redis_app_password": "vault_redis_app_password",
    "redis_admin_password": "vault_redis_admin_password",
    "app_secret_key": "vault_app_secret_key",
    "backup_repo_cipher_pass": "vault_backup_repo_cipher_pass",
    "redis_exporter_password": "vault_redis_exporter_password",
    "pgbouncer_auth_password": "vault_pgbouncer_auth_password",
}
#: Vault values that only exist for a while (`tsdeploy rotate-secrets` writes them): empty when absent.
OPTIONAL_VAULT_REFERENCES = {name: f"{{{{ vault_{name} | default('') }}}}"
                             for name in ("app_secret_key_fallback", "redis_app_password_fallback",
                                          "postgresql_app_password_fallback", "redis_admin_password_fallback",
                                          "redis_exporter_password_fallback")}
# Every file the lab writes into the inventory directory (lab down removes exactly these).
#: The lab's monitor host: alerts go to the local sink the tests read, and the intervals are short so that an
#: alert fires and resolves within a test (a production inventory keeps the roles' defaults).
LAB_MONITOR = {
    "monitor_alert_sink": True,
    "monitor_scrape_interval": "5s",
    "monitor_evaluation_interval": "5s",
    "monitor_alert_group_wait": "5s",
    "monitor_alert_group_interval": "10s",
}
WRITTEN_FILES = ("hosts.yml", "group_vars/all/main.yml", "group_vars/all/vault.yml", "ansible.cfg")


@dataclass(frozen=True)
class InventoryHost:
    """A lab host as the inventory describes it."""

    name: str
    address: str
    groups: tuple[str, ...]
    tls_cert_file: str
    tls_key_file: str


@dataclass(frozen=True)
class LabFiles:
    """Paths outside the tree that the inventory points at."""

    ssh_key: str
    known_hosts: str
    ca_cert: str
    vault_password: str


def hosts_document(hosts: list[InventoryHost], files: LabFiles, deploy_user: str) -> dict:
    """hosts.yml: host vars under all.hosts, membership under the registry's groups."""
    ssh_args = f"-o UserKnownHostsFile={files.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    all_hosts = {
        host.name: {
            "ansible_host": host.address,
            "ansible_user": deploy_user,
            "ansible_ssh_private_key_file": files.ssh_key,
            "ansible_ssh_common_args": ssh_args,
            "private_address": host.address,
            "host_memory": HOST_MEMORY,
            "host_cpus": HOST_CPUS,
            "tls_cert_file": host.tls_cert_file,
            "tls_key_file": host.tls_key_file,
        }
        for host in hosts
    }
    children = {
        str(group): {"hosts": {host.name: {} for host in hosts if group in host.groups}} for group in GROUPS
    }
    return {"all": {"hosts": all_hosts, "children": children}}


def main_vars(release: str, files: LabFiles, deploy_user: str, subnet: str, lb_address: str) -> dict:
    """group_vars/all/main.yml: the lab's non-secret settings and references into the vault."""
    return {
        "debian_release": release,
        "deploy_user": deploy_user,
        "ssh_allow_from": [subnet],
        "tls_ca_cert_file": files.ca_cert,
        "app_seed_jobs": APP_SEED_JOBS,
        "nginx_server_name": lb_address,
        **LAB_MONITOR,
        **{name: f"{{{{ {vault_name} }}}}" for name, vault_name in VAULT_REFERENCES.items()},
        **OPTIONAL_VAULT_REFERENCES,
    }


def ansible_cfg(files: LabFiles) -> str:
    return f"[defaults]\ninventory = hosts.yml\nvault_password_file = {files.vault_password}\n"


def encrypt_vault(plaintext: str, password_file: str) -> str:
    """Encrypt `plaintext` with ansible-vault (AES256) using the lab's password file."""
    return vault.encrypt(plaintext, password_file)


def decrypt_vault(ciphertext: str, password_file: str) -> str:
    return vault.decrypt(ciphertext, password_file)


def _dump(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def write_inventory(
    directory: Path,
    *,
    lab_name: str,
    hosts: list[InventoryHost],
    files: LabFiles,
    release: str,
    subnet: str,
    lb_address: str,
    secrets: dict[str, str],
    deploy_user: str = "deploy",
) -> None:
    """Write (or refresh) the inventory; the vault is re-encrypted only when its content changed."""
    header = HEADER.format(name=lab_name)
    group_vars = directory / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(header + _dump(hosts_document(hosts, files, deploy_user)))
    (group_vars / "main.yml").write_text(
        header + _dump(main_vars(release, files, deploy_user, subnet, lb_address))
    )
    (directory / "ansible.cfg").write_text(header + ansible_cfg(files))
    vault_path = group_vars / "vault.yml"
    plaintext = _dump(secrets)
    if vault_path.is_file():
        try:
            if decrypt_vault(vault_path.read_text(), files.vault_password) == plaintext:
                return
        except AnsibleError:  # encrypted with another password (an older lab): replace it below
            pass
    vault_path.write_text(encrypt_vault(plaintext, files.vault_password))
    vault_path.chmod(0o600)


def remove_inventory(directory: Path) -> None:
    """Remove the files the lab wrote and the directories that became empty; nothing else."""
    for relative in WRITTEN_FILES:
        (directory / relative).unlink(missing_ok=True)
    for sub in (directory / "group_vars" / "all", directory / "group_vars", directory):
        try:
            sub.rmdir()
        except OSError:
            pass  # not empty: someone else keeps files there, leave them alone
