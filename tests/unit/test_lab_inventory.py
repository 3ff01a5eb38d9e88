"""The inventory the lab writes: Ansible YAML that ansible-core itself loads, with an encrypted vault."""

import stat
from pathlib import Path

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret
from ansible.vars.manager import VariableManager

from roles.registry import GROUPS
from tsdeploy.lab import inventory
from tsdeploy.lab.topology import hosts_of

SECRETS = {
    "vault_postgresql_app_password": "pg-secret",
    "vault_postgresql_owner_password": "pg-owner-secret",
    "vault_redis_app_password": "redis-secret",
    "vault_redis_admin_password": "redis-admin-secret",
    "vault_app_secret_key": "app-secret",
    "vault_backup_repo_cipher_pass": "backup-secret",
    "vault_redis_exporter_password": "redis-exporter-secret",
    "vault_pgbouncer_auth_password": "pgbouncer-auth-secret",
}


@pytest.fixture
def lab_files(tmp_path):
    password = tmp_path / "state" / "vault-pass"
    password.parent.mkdir()
    password.write_text("correct horse battery staple\n")
    return inventory.LabFiles(
        ssh_key="/state/id_ed25519", known_hosts="/state/known_hosts", ca_cert="/state/pki/ca.crt",
        vault_password=str(password),
    )


def _hosts(topology):
    return [
        inventory.InventoryHost(name, f"198.18.5.{10 + i}", groups, f"/state/pki/{name}.crt", f"/state/pki/{name}.key")
        for i, (name, groups) in enumerate(hosts_of(topology))
    ]


def _write(directory, lab_files, topology="split"):
    inventory.write_inventory(
        directory, lab_name="unit", hosts=_hosts(topology), files=lab_files, release="trixie",
        subnet="198.18.5.0/24", lb_address="198.18.5.15", secrets=SECRETS,
    )


def _ansible(directory, lab_files):
    loader = DataLoader()
    password = Path(lab_files.vault_password).read_bytes().strip()
    loader.set_vault_secrets([("default", VaultSecret(password))])
    manager = InventoryManager(loader=loader, sources=[str(directory / "hosts.yml")])
    return manager, VariableManager(loader=loader, inventory=manager)


def test_split_inventory_puts_each_host_in_its_group(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    manager, _ = _ansible(tmp_path, lab_files)
    groups = {group: [h.name for h in manager.groups[group].get_hosts()] for group in GROUPS}
    assert groups == {"db": ["db1"], "pooler": ["db1"], "backup": ["backup1"], "cache": ["cache1"],
                      "app": ["app1", "app2"],
                      "lb": ["lb1"], "monitor": ["monitor1"]}


def test_single_inventory_puts_ts1_in_every_group(tmp_path, lab_files):
    _write(tmp_path, lab_files, topology="single")
    manager, _ = _ansible(tmp_path, lab_files)
    assert all([h.name for h in manager.groups[group].get_hosts()] == ["ts1"] for group in GROUPS)


def test_host_vars_carry_connection_address_size_and_certificates(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    manager, variables = _ansible(tmp_path, lab_files)
    host_vars = variables.get_vars(host=manager.get_host("app2"))
    assert host_vars["ansible_host"] == host_vars["private_address"] == "198.18.5.14"
    assert host_vars["ansible_user"] == "deploy"
    assert host_vars["ansible_ssh_private_key_file"] == "/state/id_ed25519"
    assert "UserKnownHostsFile=/state/known_hosts" in host_vars["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in host_vars["ansible_ssh_common_args"]
    assert (host_vars["host_memory"], host_vars["host_cpus"]) == ("2GB", 2)
    assert (host_vars["tls_cert_file"], host_vars["tls_key_file"]) == ("/state/pki/app2.crt", "/state/pki/app2.key")


def test_group_vars_hold_the_lab_settings(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    manager, variables = _ansible(tmp_path, lab_files)
    host_vars = variables.get_vars(host=manager.get_host("db1"))
    assert host_vars["debian_release"] == "trixie"
    assert host_vars["tls_ca_cert_file"] == "/state/pki/ca.crt"
    assert host_vars["app_seed_jobs"] == 2000
    assert host_vars["nginx_server_name"] == "198.18.5.15"
    assert host_vars["ssh_allow_from"] == ["198.18.5.0/24"]


def test_vault_is_encrypted_on_disk_and_decrypts_to_the_secrets(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    vault = tmp_path / "group_vars/all/vault.yml"
    text = vault.read_text()
    assert text.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert not any(secret in text for secret in SECRETS.values())
    assert stat.S_IMODE(vault.stat().st_mode) == 0o600
    manager, variables = _ansible(tmp_path, lab_files)
    host_vars = variables.get_vars(host=manager.get_host("db1"))
    assert {name: host_vars[name] for name in SECRETS} == SECRETS


def test_secrets_are_not_in_any_plain_file(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    for name in ("hosts.yml", "group_vars/all/main.yml", "ansible.cfg"):
        text = (tmp_path / name).read_text()
        assert not any(secret in text for secret in SECRETS.values()), name


def test_role_variables_refer_to_the_vault(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    main = yaml.safe_load((tmp_path / "group_vars/all/main.yml").read_text())
    assert main["postgresql_app_password"] == "{{ vault_postgresql_app_password }}"
    assert main["app_secret_key"] == "{{ vault_app_secret_key }}"
    # Written by `tsdeploy rotate-secrets`, absent until then: the lab's inventory can be rotated.
    for name in ("app_secret_key_fallback", "redis_app_password_fallback", "postgresql_app_password_fallback"):
        assert main[name] == f"{{{{ vault_{name} | default('') }}}}"


def test_ansible_cfg_points_at_the_password_file_outside_the_tree(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    assert f"vault_password_file = {lab_files.vault_password}" in (tmp_path / "ansible.cfg").read_text()


def test_rewriting_unchanged_secrets_keeps_the_vault_file_byte_identical(tmp_path, lab_files):
    _write(tmp_path, lab_files)
    first = (tmp_path / "group_vars/all/vault.yml").read_bytes()
    _write(tmp_path, lab_files)
    assert (tmp_path / "group_vars/all/vault.yml").read_bytes() == first


def test_remove_inventory_deletes_only_what_the_lab_wrote(tmp_path, lab_files):
    _write(tmp_path / "inv", lab_files)
    (tmp_path / "inv" / "notes.txt").write_text("someone else's file")
    inventory.remove_inventory(tmp_path / "inv")
    assert sorted(p.name for p in (tmp_path / "inv").rglob("*")) == ["notes.txt"]
    (tmp_path / "inv" / "notes.txt").unlink()
    _write(tmp_path / "inv", lab_files)
    inventory.remove_inventory(tmp_path / "inv")
    assert not (tmp_path / "inv").exists()
