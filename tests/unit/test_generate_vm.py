"""`tsdeploy generate vm` writes, per host, every manifest file byte-identical to the deploy's rendering.

The inventory is a real one (the lab's writer: hosts.yml, group_vars, an ansible-vault encrypted vault.yml,
ansible.cfg pointing at the password file), rendered through the real context builder and templates.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import secrets
import subprocess

import pytest
from click.testing import CliRunner

from tsdeploy import inventory as inventory_module
from tsdeploy import manifest
from tsdeploy.context import build_context
from tsdeploy.generate import generate as generate_group
from tsdeploy.generate.vm import trigger_of
from tsdeploy.lab.inventory import InventoryHost, LabFiles, write_inventory
from tsdeploy.templating import render

HOSTS = {"db1": ("db",), "backup1": ("backup",), "cache1": ("cache",), "app1": ("app",), "app2": ("app",), "lb1": ("lb",)}
VAULT_NAMES = ("vault_postgresql_app_password", "vault_postgresql_owner_password", "vault_redis_app_password",
               "vault_redis_admin_password", "vault_app_secret_key", "vault_backup_repo_cipher_pass", "vault_redis_exporter_password",
               "vault_pgbouncer_auth_password")


@pytest.fixture(scope="module")
def lab_inventory(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, dict[str, str]]:
    """A split inventory with an encrypted vault; returns its directory and the vault's secrets."""
    root = tmp_path_factory.mktemp("vm-inventory")
    cert, key, password = root / "host.crt", root / "host.key", root / "vault-password"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot a real certificate\n-----END CERTIFICATE-----\n")
    key.write_text(f"-----BEGIN PRIVATE KEY-----\n{secrets.token_hex(32)}\n-----END PRIVATE KEY-----\n")
    password.write_text(secrets.token_hex(16))
    password.chmod(0o600)
    hosts = [InventoryHost(name, f"10.77.0.{11 + index}", groups, str(cert), str(key))
             for index, (name, groups) in enumerate(HOSTS.items())]
    vault = {name: secrets.token_hex(24) for name in VAULT_NAMES}
    write_inventory(root / "inventory", lab_name="unit", hosts=hosts,
                    files=LabFiles(str(key), str(root / "known_hosts"), str(cert), str(password)),
                    release="bookworm", subnet="10.77.0.0/24", lb_address="10.77.0.15", secrets=vault)
    return root / "inventory", vault | {"tls_key": key.read_text()}


def generate_vm(inventory: pathlib.Path, host: str, out: pathlib.Path, *flags: str):
    return CliRunner().invoke(generate_group, ["vm", "--inventory", str(inventory), "--host", host,
                                               "--out", str(out), *flags])


@pytest.fixture(scope="module")
def bundles(lab_inventory, tmp_path_factory) -> dict[tuple[str, bool], pathlib.Path]:
    """(host, with secrets) -> bundle directory, for every host of the inventory, both ways."""
    inventory, _ = lab_inventory
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for host in HOSTS:
        for with_secrets in (True, False):
            target = out / f"{host}-{'secrets' if with_secrets else 'placeholders'}"
            result = generate_vm(inventory, host, target, *(["--with-secrets"] if with_secrets else []))
            assert result.exit_code == 0, result.output
            made[(host, with_secrets)] = target
    return made


@pytest.fixture(scope="module")
def contexts(lab_inventory) -> dict[str, dict]:
    inventory = inventory_module.load(lab_inventory[0])
    return {host: build_context(inventory, host) for host in HOSTS}


@pytest.mark.parametrize("host", HOSTS)
def test_every_manifest_file_of_the_host_is_in_the_bundle_with_its_recorded_mode(bundles, contexts, host) -> None:
    out, ctx = bundles[(host, True)], contexts[host]
    expected = {item.placed(ctx).dest: item.placed(ctx) for item in manifest.files_for(ctx)}
    recorded = {entry["path"]: entry for entry in json.loads((out / "manifest.json").read_text())["files"]}
    on_disk = {f"/{path.relative_to(out / 'root')}" for path in (out / "root").rglob("*") if path.is_file()}
    assert set(recorded) == set(expected) == on_disk
    for path, placed in expected.items():
        entry = recorded[path]
        assert (entry["owner"], entry["group"], entry["mode"]) == (placed.user, placed.group, placed.mode), path
        assert oct((out / f"root{path}").stat().st_mode & 0o777) == f"0o{placed.mode}", path


@pytest.mark.parametrize("host", HOSTS)
def test_with_secrets_every_file_is_byte_identical_to_the_deploys_rendering(bundles, contexts, host) -> None:
    out, ctx = bundles[(host, True)], contexts[host]
    recorded = {entry["path"]: entry for entry in json.loads((out / "manifest.json").read_text())["files"]}
    for item in manifest.files_for(ctx):
        dest = item.placed(ctx).dest
        wanted = (render(item.template, ctx) if item.template
                  else pathlib.Path(item.source_path(ctx)).read_text()).encode()
        written = (out / f"root{dest}").read_bytes()
        assert written == wanted, f"{host}:{dest} differs from {item.label}"
        assert recorded[dest]["sha256"] == hashlib.sha256(wanted).hexdigest()


def test_the_app_hosts_groups_files_are_exactly_the_app_and_common_roles(contexts) -> None:
    roles = {item.role for item in manifest.files_for(contexts["app1"])}
    assert roles == {"common", "app"}
    assert {item.role for item in manifest.files_for(contexts["db1"])} == {"common", "postgres"}


@pytest.mark.parametrize("host", HOSTS)
def test_without_secrets_no_secret_reaches_the_bundle(bundles, lab_inventory, host) -> None:
    out = bundles[(host, False)]
    vault = lab_inventory[1]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for name, value in vault.items():
                assert value not in text, f"{name} leaked into {path}"
                assert hashlib.sha256(value.encode()).hexdigest() not in text, f"digest of {name} in {path}"


def test_without_secrets_the_app_env_and_redis_acl_hold_named_placeholders(bundles) -> None:
    env = (bundles[("app1", False)] / "root/etc/talentsphere/env").read_text()
    assert "talentsphere:__SECRET_vault_postgresql_app_password__@" in env
    assert 'SECRET_KEY="__SECRET_vault_app_secret_key__"' in env
    acl = (bundles[("cache1", False)] / "root/etc/redis/users.acl").read_text()
    assert "#__SECRET_SHA256_OF_vault_redis_app_password__ " in acl
    assert "#__SECRET_SHA256_OF_vault_redis_admin_password__ " in acl
    key = (bundles[("lb1", False)] / "root/etc/nginx/tls/talentsphere.key").read_text()
    assert key == "__SECRET_tls_key_file__\n"


@pytest.mark.parametrize("host", HOSTS)
def test_without_secrets_files_without_secrets_are_identical_to_the_secret_bundle(bundles, host) -> None:
    with_secrets, without = bundles[(host, True)], bundles[(host, False)]
    for entry in json.loads((with_secrets / "manifest.json").read_text())["files"]:
        if not entry["secret"]:
            path = f"root{entry['path']}"
            assert (without / path).read_bytes() == (with_secrets / path).read_bytes(), entry["path"]


def test_placeholders_need_no_vault_password(lab_inventory, tmp_path: pathlib.Path) -> None:
    inventory, _ = lab_inventory
    cfg = inventory / "ansible.cfg"
    saved = cfg.read_text()
    cfg.write_text("[defaults]\nvault_password_file = /nonexistent/vault-password\n")
    try:
        result = generate_vm(inventory, "app1", tmp_path / "out")
        assert result.exit_code == 0, result.output
        with_secrets = generate_vm(inventory, "app1", tmp_path / "secret", "--with-secrets")
    finally:
        cfg.write_text(saved)
    assert "__SECRET_vault_app_secret_key__" in (tmp_path / "out/root/etc/talentsphere/env").read_text()
    assert with_secrets.exit_code != 0 and "/nonexistent/vault-password does not exist" in with_secrets.output


@pytest.mark.parametrize("host", HOSTS)
def test_install_script_is_valid_bash(bundles, host) -> None:
    script = bundles[(host, True)] / "install.sh"
    assert script.stat().st_mode & 0o111
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


#: Files whose readers pick a change up by themselves: clients read the CA certificate on their next connection,
#: apt reads its configuration on each daily run, the next migrate reads the owner role's env file.
NOTHING_TO_RELOAD = {"ca", "upgrades", "app-owner-env"}


@pytest.mark.parametrize("host", HOSTS)
def test_install_script_installs_each_file_with_its_owner_and_mode_and_handles_its_change(bundles, contexts,
                                                                                           host) -> None:
    script = (bundles[(host, True)] / "install.sh").read_text()
    for item in manifest.files_for(contexts[host]):
        placed = item.placed(contexts[host])
        trigger = trigger_of(item)
        assert f"put_file {placed.dest} {placed.user} {placed.group} {placed.mode} {trigger}\n" in script
        if trigger not in NOTHING_TO_RELOAD:
            assert f"changed {trigger}" in script, f"install.sh never acts on a change of {item.key}"


def test_install_script_validates_before_reloading(bundles) -> None:
    lb = (bundles[("lb1", True)] / "install.sh").read_text()
    assert lb.index("nginx -t -q") < lb.index("systemctl reload nginx")
    assert lb.index("sshd -t") < lb.index("systemctl reload ssh")
    app = (bundles[("app1", True)] / "install.sh").read_text()
    assert app.index("--check-config") < app.index("systemctl reload talentsphere.service")


def test_readme_covers_the_steps_that_are_not_files(bundles) -> None:
    db = (bundles[("db1", False)] / "README.md").read_text()
    assert "CREATE EXTENSION IF NOT EXISTS pg_trgm;" in db and "\\password talentsphere" in db
    app = (bundles[("app1", False)] / "README.md").read_text()
    assert "pip\" install --quiet --no-index" in app and "talentsphere\" migrate" in app


def test_unknown_host_is_an_error_listing_the_inventorys_hosts(lab_inventory, tmp_path: pathlib.Path) -> None:
    result = generate_vm(lab_inventory[0], "web9", tmp_path / "out")
    assert result.exit_code != 0
    assert "--host 'web9' is not in the inventory" in result.output
    assert "db1, backup1, cache1, app1, app2, lb1" in result.output
    assert not (tmp_path / "out").exists()


def test_an_acme_lb_bundle_obtains_the_certificate_with_certbot_after_nginx_serves_the_challenge(
        lab_inventory, tmp_path: pathlib.Path) -> None:
    import shutil
    inventory = tmp_path / "inventory"
    shutil.copytree(lab_inventory[0], inventory)
    (tmp_path / "acme-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a real certificate\n")
    (inventory / "group_vars" / "all" / "zz-acme.yml").write_text(
        "nginx_server_name: jobs.example.test\nnginx_acme_directory: https://acme.example.test/dir\n"
        f"nginx_acme_ca_file: {tmp_path / 'acme-ca.pem'}\n")
    result = generate_vm(inventory, "lb1", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    script = (tmp_path / "bundle" / "install.sh").read_text()
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    placeholder, reload_, certonly = (script.index("created a self-signed placeholder"),
                                      script.index("systemctl reload nginx"), script.index("certbot certonly"))
    assert placeholder < reload_ < certonly  # nginx serves the challenge before certbot asks the CA
    assert "REQUESTS_CA_BUNDLE=/etc/letsencrypt/talentsphere-acme-ca.pem" in script
    assert "--domain jobs.example.test" in script and "systemctl enable --now certbot.timer" in script
    for path in ("etc/letsencrypt/talentsphere-acme-ca.pem", "etc/letsencrypt/renewal-hooks/deploy/talentsphere-nginx",
                 "etc/systemd/system/certbot.service.d/talentsphere.conf"):
        assert (tmp_path / "bundle" / "root" / path).is_file(), path
    assert not (tmp_path / "bundle" / "root" / "etc/nginx/tls/talentsphere.crt").exists()
