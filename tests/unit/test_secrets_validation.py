"""Secrets are refused before any host is touched when they could be guessed or leak: placeholder or
low-entropy values, a plaintext vault file, a vault password file others may read.

Real ansible-core reads real inventories in tmp (the helpers of test_inventory.py); no host is contacted.
"""

from __future__ import annotations

import base64
import os
import pathlib
import pwd
import secrets
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from roles import registry
from tsdeploy import ROOT, checks
from tsdeploy.inventory import InventoryError, load
from tsdeploy.lab.secrets import ensure_secrets

from test_inventory import SECRETS, VAULT_PASSWORD, write_inventory

EXAMPLE_VAULT = ROOT / "inventories" / "production.example" / "group_vars" / "all" / "vault.yml.example"
FIX = "openssl rand -base64 32"
#: Values a person types or copies instead of generating: each long enough for the old length-only rule.
GUESSABLE = {
    "the example's placeholder": "REPLACE-ME-with-at-least-32-random-characters-flask",
    "changeme": "changeme-changeme-in-production-7Qx",
    "a password word": "MyCompanyPassword2026!-production-db",
    "one repeated character": "x" * 40,
    "a keyboard sequence": "Zq7-0123456789-abcdefghij-Kx8-Lm2P",
    "a repeated pattern": "Tr0ub4dor&3Tr0ub4dor&3Tr0ub4dor&3",
    "digits only (about 120 bits)": "80469315726048193572604813957260481",
}


def secret_checks() -> dict[str, checks.Check]:
    """Every secret variable's check (the ones a generated value must pass)."""
    found = {name: variable.check for name, (_, variable) in registry.variables().items()
             if variable.secret and variable.check is not None}
    assert set(found) == registry.secret_variables()  # every secret has a check
    return found


def problems_of(inventory: pathlib.Path) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load(inventory)
    return raised.value.problems


# --- 1. placeholder and low-entropy secrets -----------------------------------------------------------------

def test_every_value_of_the_example_vault_is_refused_by_its_variables_check() -> None:
    example = yaml.safe_load(EXAMPLE_VAULT.read_text())
    for vault_name, value in example.items():
        name = vault_name.removeprefix("vault_")
        problem = secret_checks()[name](value)
        assert problem is not None, f"{name}: the example's placeholder passes"
        assert "placeholder" in problem[0] and FIX in problem[1]


def test_a_copied_example_vault_fails_validation_naming_host_variable_and_file_never_the_value(
        tmp_path: pathlib.Path) -> None:
    example = yaml.safe_load(EXAMPLE_VAULT.read_text())
    copied = {name: example[name] for name in SECRETS}
    problems = problems_of(write_inventory(tmp_path, secrets=copied))
    app = [p for p in problems if p.startswith("app1: app_secret_key = (secret, not shown) "
                                               "(inventory/group_vars/all/vault.yml:")]
    assert len(app) == 1 and "is a placeholder" in app[0] and f"fix: put a random value" in app[0]
    assert FIX in app[0]
    assert any(p.startswith("db1: postgresql_app_password = (secret, not shown)") for p in problems)
    assert any(p.startswith("cache1: redis_admin_password = (secret, not shown)") for p in problems)
    for value in copied.values():
        assert all(value not in problem for problem in problems)


@pytest.mark.parametrize("kind", sorted(GUESSABLE))
@pytest.mark.parametrize("name", sorted(registry.secret_variables() - {"backup_s3_key", "backup_s3_key_secret"}))
def test_guessable_values_are_refused_for_every_generated_secret(name: str, kind: str) -> None:
    problem = secret_checks()[name](GUESSABLE[kind])
    assert problem is not None, f"{name} accepts {kind}"
    assert FIX in problem[1]
    assert GUESSABLE[kind] not in problem[0] + problem[1]


def test_a_short_secret_is_refused_even_when_random() -> None:
    problem = checks.secret()(secrets.token_urlsafe(16))  # 22 characters
    assert problem == ("is missing or shorter than 32 characters",
                       "put a random value of >= 32 characters in the vault file (e.g. `openssl rand -base64 32`)")


def test_the_low_entropy_refusal_says_the_estimate_and_the_bar() -> None:
    problem = checks.secret()(GUESSABLE["digits only (about 120 bits)"])
    assert problem is not None
    assert problem[0] == ("is too guessable: about 116 bits of entropy (estimated from its length and character "
                          "classes), fewer than 128")


def test_the_entropy_estimate_counts_character_classes() -> None:
    assert checks.entropy_bits("0f" * 16) == 128  # hex digits: 4 bits each
    assert checks.entropy_bits("a" * 10) == pytest.approx(10 * 4.700, abs=0.01)  # lower-case: log2(26)
    assert checks.entropy_bits("aA0-" * 3) == pytest.approx(12 * 6.570, abs=0.01)  # every class: log2(95)


@pytest.mark.parametrize("generator", ["openssl rand -base64 32", "openssl rand -hex 16", "openssl rand -hex 32"])
def test_values_from_the_documented_generators_pass(generator: str) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    for _ in range(20):
        value = subprocess.run(generator.split(), capture_output=True, text=True, check=True).stdout.strip()
        for name, check in secret_checks().items():
            assert check(value) is None, f"{name} refuses a value from `{generator}`"


def test_the_labs_generated_secrets_pass_every_secret_check(tmp_path: pathlib.Path) -> None:
    lab = ensure_secrets(tmp_path)
    checks_by_name = secret_checks()
    for vault_name, value in lab.items():
        assert checks_by_name[vault_name.removeprefix("vault_")](value) is None
    # The lab generates each with secrets.token_urlsafe(32): no draw of many may be refused.
    check = checks.secret()
    assert [value for value in (secrets.token_urlsafe(32) for _ in range(3000)) if check(value)] == []
    assert [value for value in (secrets.token_hex(16) for _ in range(3000)) if check(value)] == []
    assert [value for value in (base64.b64encode(os.urandom(32)).decode() for _ in range(3000))
            if check(value)] == []


def test_issued_s3_credentials_only_refuse_the_documentation_examples() -> None:
    for name in ("backup_s3_key", "backup_s3_key_secret"):
        check = secret_checks()[name]
        assert check("") is None  # off
        assert check("AKIA" + secrets.token_hex(8).upper()) is None  # an access key id is 20 characters
        assert check("AKIAIOSFODNN7EXAMPLE") is not None  # AWS's documentation example
        assert check("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") is not None


# --- 2. a plaintext vault file ------------------------------------------------------------------------------

def test_a_plaintext_vault_file_is_refused_naming_the_file_and_the_fix(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    vault = inventory / "group_vars" / "all" / "vault.yml"
    vault.write_text(yaml.safe_dump(SECRETS))
    problems = problems_of(inventory)
    assert problems == [
        f"{vault} defines vault_app_secret_key, vault_postgresql_app_password, vault_postgresql_owner_password and 2 "
        f"more in plaintext: the vault's secrets must be encrypted; fix: ansible-vault encrypt {vault} (and "
        "rotate those secrets if the plaintext was ever committed or shared)"]
    assert all(value not in problems[0] for value in SECRETS.values())


def test_plaintext_vault_variables_in_host_vars_are_refused_even_without_the_vault(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    (inventory / "host_vars").mkdir()
    (inventory / "host_vars" / "db1.yml").write_text("vault_postgresql_app_password: not-encrypted\n")
    with pytest.raises(InventoryError, match=r"host_vars/db1.yml defines vault_postgresql_app_password in "
                                             r"plaintext.*fix: ansible-vault encrypt .*host_vars/db1.yml"):
        load(inventory, secrets=False)


def test_an_inline_encrypted_vault_value_is_accepted(tmp_path: pathlib.Path) -> None:
    """`ansible-vault encrypt_string` output (`!vault |`) in a plaintext file is encrypted: it is allowed."""
    inventory = write_inventory(tmp_path)
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    secret = SECRETS["vault_app_secret_key"]
    ciphertext = vault.encrypt(secret).decode()
    (inventory / "group_vars" / "all" / "extra.yml").write_text(
        "vault_app_secret_key: !vault |\n" + "".join(f"  {line}\n" for line in ciphertext.splitlines()))
    assert load(inventory).hostvars["app1"]["app_secret_key"] == secret


def test_the_labs_inventory_is_encrypted_so_it_is_not_exempt_and_loads(tmp_path: pathlib.Path) -> None:
    from tsdeploy.lab.inventory import InventoryHost, LabFiles, write_inventory as write_lab_inventory

    password = tmp_path / "vault-pass"
    password.write_text(secrets.token_urlsafe(48) + "\n")
    password.chmod(0o600)
    pem = tmp_path / "pem"
    pem.write_text("-----BEGIN PLACEHOLDER-----\n")
    hosts = [InventoryHost("ts1", "198.18.7.10", ("db", "cache", "app", "lb", "backup"), str(pem), str(pem))]
    write_lab_inventory(tmp_path / "inventory", lab_name="unit", hosts=hosts,
                        files=LabFiles(str(pem), str(tmp_path / "known_hosts"), str(pem), str(password)),
                        release="bookworm", subnet="198.18.7.0/24", lb_address="198.18.7.10",
                        secrets=ensure_secrets(tmp_path))
    assert load(tmp_path / "inventory").hosts == ["ts1"]


# --- 3. the vault password file -----------------------------------------------------------------------------

def test_a_vault_password_file_others_may_read_is_refused_with_its_mode_and_the_fix(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    password_file = tmp_path / "vault-pass"
    password_file.chmod(0o640)
    assert problems_of(inventory) == [
        f"vault password file {password_file} has mode 0640 (group or others may read it); it opens every secret "
        f"of the inventory; fix: chmod 600 {password_file}"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_vault_password_file_of_another_user_is_refused_with_its_owner_and_the_fix(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    password_file = tmp_path / "vault-pass"
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(password_file, nobody, -1)
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert problems_of(inventory) == [
        f"vault password file {password_file} is owned by nobody (uid {nobody}), not by {me} (uid {os.geteuid()}) "
        f"who runs the deploy; it opens every secret of the inventory; fix: chown {me} {password_file}"]


def test_a_private_vault_password_file_is_used(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    assert oct((tmp_path / "vault-pass").stat().st_mode & 0o777) == "0o600"
    assert load(inventory).hostvars["db1"]["postgresql_app_password"] == SECRETS["vault_postgresql_app_password"]
