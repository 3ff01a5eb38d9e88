"""`tsdeploy rotate-secrets`: for app_secret_key, two vault rewrites, each followed by a deploy, so that every
token stays valid on every host during the roll; a vault the inventory cannot load is put back.

The vault is a real ansible-vault file of an inventory on disk; `deploy` is a recorder that reads back what
the inventory gives the app hosts at that moment (the e2e test rotates a real lab under traffic).
"""

from __future__ import annotations

import hashlib
import pathlib

import pytest
import yaml

from tsdeploy import rotate, vault
from tsdeploy.context import build_context
from tsdeploy.inventory import load

from test_inventory import SECRETS, VAULT_PASSWORD, write_inventory

FALLBACK_MAPPING = {f"{name}_fallback": f"{{{{ vault_{name}_fallback | default('') }}}}"
                    for name in ("app_secret_key", "redis_app_password", "postgresql_app_password",
                                 "redis_admin_password")}
NEW_KEY = "Vq3-new-key-" + "k7Zp2Lx9Wm4Rt8Yb1Nc6Hd0Fg5Js3Qa"


def inventory_with_mapping(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_inventory(tmp_path, main_overrides=FALLBACK_MAPPING)


def vault_values(inventory: pathlib.Path) -> dict:
    text = (inventory / "group_vars" / "all" / "vault.yml").read_text()
    assert vault.encrypted(text), "the vault was written in plaintext"
    password = inventory.parent / "vault-pass"
    return yaml.safe_load(vault.decrypt(text, password))


def test_each_phase_deploys_keys_every_host_accepts_and_the_old_key_stays_a_fallback(tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    old = SECRETS["vault_app_secret_key"]
    seen = []

    def deploy(phase: str) -> None:
        loaded = load(inventory)
        env = build_context(loaded, "app1")["app"]["env"]
        seen.append((env["SECRET_KEY"].strip('"'), env.get("SECRET_KEY_FALLBACKS", "").strip('"')))

    rotate.rotate(inventory, None, "app_secret_key", deploy, new_values={"app_secret_key": NEW_KEY})
    assert seen == [(old, NEW_KEY), (NEW_KEY, old)]
    values = vault_values(inventory)
    assert values["vault_app_secret_key"] == NEW_KEY and values["vault_app_secret_key_fallback"] == old
    assert {k: v for k, v in values.items() if not k.startswith("vault_app_secret_key")} == {
        k: v for k, v in SECRETS.items() if k != "vault_app_secret_key"}  # the other secrets are untouched


def test_without_a_fallback_the_app_gets_no_fallback_setting(tmp_path: pathlib.Path) -> None:
    env = build_context(load(inventory_with_mapping(tmp_path)), "app1")["app"]["env"]
    assert "SECRET_KEY_FALLBACKS" not in env


def test_an_inventory_that_does_not_map_the_fallback_gets_its_vault_back_and_the_fix(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)  # no app_secret_key_fallback mapping
    before = (inventory / "group_vars" / "all" / "vault.yml").read_text()
    deployed = []
    with pytest.raises(rotate.RotationError, match=r"app1: .*fix: map them in group_vars/all/main.yml"):
        rotate.rotate(inventory, None, "app_secret_key", deployed.append, new_values={"app_secret_key": NEW_KEY})
    assert deployed == []
    assert (inventory / "group_vars" / "all" / "vault.yml").read_text() == before


def test_a_failed_first_deploy_leaves_a_vault_every_host_can_run_with(tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)

    def deploy(phase: str) -> None:
        raise RuntimeError("host unreachable")

    with pytest.raises(RuntimeError):
        rotate.rotate(inventory, None, "app_secret_key", deploy, new_values={"app_secret_key": NEW_KEY})
    # Phase 1's vault: the old key still signs, so hosts deployed or not accept every token there is.
    values = vault_values(inventory)
    assert values["vault_app_secret_key"] == SECRETS["vault_app_secret_key"]
    assert values["vault_app_secret_key_fallback"] == NEW_KEY


def test_a_weak_fallback_is_refused_like_any_secret(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path, main_overrides={"app_secret_key_fallback": "changeme-changeme-1234"})
    from test_inventory import problems_of
    problems = problems_of(inventory)
    assert any(p.startswith("app1: app_secret_key_fallback = (secret, not shown)") for p in problems), problems
    assert VAULT_PASSWORD not in " ".join(problems)


def test_the_redis_password_is_accepted_twice_over_while_the_app_hosts_switch_then_alone(
        tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    old, new = SECRETS["vault_redis_app_password"], NEW_KEY
    seen = []

    def deploy(phase: str) -> None:
        loaded = load(inventory)
        acl = build_context(loaded, "cache1")["redis"]
        url = build_context(loaded, "app1")["app"]["env"]["REDIS_URL"]
        seen.append((acl["app_password_sha256"], acl["app_password_fallback_sha256"], f":{new}@" in url))

    rotate.rotate(inventory, None, "redis_app_password", deploy, new_values={"redis_app_password": new})
    digest = {value: hashlib.sha256(value.encode()).hexdigest() for value in (old, new)}
    # Phase 1: Redis takes both before an app host moves (the deploy's first phase), the app hosts get the new
    # one; phase 2: the old one is gone.
    assert seen == [(digest[new], digest[old], True), (digest[new], "", True)]
    values = vault_values(inventory)
    assert values["vault_redis_app_password"] == new and "vault_redis_app_password_fallback" not in values


def test_the_acl_file_lists_both_passwords_of_the_app_user_only_during_a_rotation(tmp_path: pathlib.Path) -> None:
    from tsdeploy.templating import render
    inventory = write_inventory(tmp_path, main_overrides={"redis_app_password_fallback": NEW_KEY})
    acl = render("redis/users.acl.j2", build_context(load(inventory), "cache1"))
    line = next(line for line in acl.splitlines() if line.startswith("user talentsphere "))
    assert line.count(" #") == 2 and hashlib.sha256(NEW_KEY.encode()).hexdigest() in line
    plain = render("redis/users.acl.j2", build_context(load(write_inventory(tmp_path / "b")), "cache1"))
    assert next(line for line in plain.splitlines() if line.startswith("user talentsphere ")).count(" #") == 1


def database_passwords(inventory: pathlib.Path) -> tuple[str, str, str]:
    """(the runtime role's password on db1, the one in app1's DATABASE_URL, app1's fallback)."""
    loaded = load(inventory)
    env = build_context(loaded, "app1")["app"]["env"]
    url = env["DATABASE_URL"].strip('"')
    return (build_context(loaded, "db1")["postgres"]["app_password"], url.split(":")[2].split("@")[0],
            env.get("DATABASE_PASSWORD_FALLBACK", "").strip('"'))


def test_the_database_password_reaches_every_app_host_before_postgresql_switches_to_it(
        tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    old, new = SECRETS["vault_postgresql_app_password"], NEW_KEY
    seen = []
    rotate.rotate(inventory, None, "postgresql_app_password", lambda phase: seen.append(database_passwords(inventory)),
                  new_values={"postgresql_app_password": new})
    # Phase 1: the role keeps the old password, every app host learns the new one as its fallback. Phase 2: the
    # deploy sets the role's new password on db1 before any app host switches, and an app host still running
    # phase 1's env (old first, new as fallback) logs in with its fallback until it switches.
    assert seen == [(old, old, new), (new, new, "")]
    values = vault_values(inventory)
    assert values["vault_postgresql_app_password"] == new and "vault_postgresql_app_password_fallback" not in values


def test_the_owner_password_changes_in_one_deploy_on_the_db_host_and_in_the_deploys_own_env_file(
        tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    seen = []

    def deploy(phase: str) -> None:
        loaded = load(inventory)
        owner_url = build_context(loaded, "app1")["app"]["owner_env"]["DATABASE_URL"]
        seen.append((build_context(loaded, "db1")["postgres"]["owner_password"], f":{NEW_KEY}@" in owner_url))

    rotate.rotate(inventory, None, "postgresql_owner_password", deploy, new_values={"postgresql_owner_password": NEW_KEY})
    assert seen == [(NEW_KEY, True)]


def test_secrets_rotated_together_share_their_phases(tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    phases: list[str] = []
    rotated = rotate.rotate(inventory, None, list(rotate.ROTATABLE), phases.append, all_defined=True)
    # This inventory has no monitor host, so its vault has no exporter password: left out, not invented.
    assert rotated == [name for name in rotate.ROTATABLE if name != "redis_exporter_password"]
    assert len(phases) == 2  # not one deploy per phase of each secret
    assert phases[0].startswith("1/2: ") and all(name in phases[0] for name in rotated)
    assert phases[1].startswith("2/2: ") and "postgresql_owner_password" not in phases[1]
    values = vault_values(inventory)
    for name in rotated:
        assert values[f"vault_{name}"] != SECRETS[f"vault_{name}"], name
    # Each secret got its own new value (the owner's must differ from the runtime's: validation refuses it).
    assert len({values[f"vault_{name}"] for name in rotated}) == len(rotated)
    assert "vault_redis_exporter_password" not in values
    load(inventory)  # validation (which refuses an owner password equal to the runtime's) passes


def test_asked_by_name_a_secret_the_vault_lacks_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(rotate.RotationError, match="vault_redis_exporter_password must be defined in exactly one"):
        rotate.rotate(inventory_with_mapping(tmp_path), None, ["redis_exporter_password"], lambda phase: None)


def test_the_redis_admin_password_is_loaded_beside_the_old_one_while_the_deploy_still_logs_in_with_it(
        tmp_path: pathlib.Path) -> None:
    inventory = inventory_with_mapping(tmp_path)
    old, new = SECRETS["vault_redis_admin_password"], NEW_KEY
    seen = []

    def deploy(phase: str) -> None:
        redis = build_context(load(inventory), "cache1")["redis"]
        seen.append((redis["admin_password"], redis["admin_password_sha256"], redis["admin_password_fallback_sha256"]))

    rotate.rotate(inventory, None, "redis_admin_password", deploy, new_values={"redis_admin_password": new})
    digest = {value: hashlib.sha256(value.encode()).hexdigest() for value in (old, new)}
    # Phase 1: the deploy logs in with the old password (the running ACL has only it) and loads both; phase 2:
    # it logs in with the new one (loaded in phase 1) and loads only that.
    assert seen == [(old, digest[old], digest[new]), (new, digest[new], "")]


def test_the_command_rotates_every_secret_unless_told_which(tmp_path: pathlib.Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from tsdeploy import deployment
    inventory = inventory_with_mapping(tmp_path)
    deploys: list[dict] = []
    monkeypatch.setattr(deployment, "deploy", __import__("click").command()(lambda **kwargs: deploys.append(kwargs)))
    rotated = []
    monkeypatch.setattr(rotate, "rotate", lambda path, password, names, deploy, all_defined: rotated.append(
        (names, all_defined)) or names)
    runner = CliRunner()
    assert runner.invoke(rotate.rotate_secrets, [str(inventory)]).exit_code == 0
    assert runner.invoke(rotate.rotate_secrets, [str(inventory), "--only", "postgresql_app_password",
                                                 "--only", "app_secret_key"]).exit_code == 0
    assert rotated == [(list(rotate.ROTATABLE), True), (["app_secret_key", "postgresql_app_password"], False)]


def test_during_a_rotation_the_exporter_user_has_both_passwords_and_the_exporter_the_new_one(
        tmp_path: pathlib.Path) -> None:
    from test_rendering_golden import _lab_inventory
    from tsdeploy.templating import render
    inventory = _lab_inventory(tmp_path, "split")  # with a monitor host, so with the exporter's user
    (inventory / "group_vars" / "all" / "zz-rotation.yml").write_text(
        yaml.safe_dump({"redis_exporter_password_fallback": NEW_KEY}))
    ctx = build_context(load(inventory), "cache1")
    line = next(line for line in render("redis/users.acl.j2", ctx).splitlines() if line.startswith("user exporter "))
    assert line.count(" #") == 2 and hashlib.sha256(NEW_KEY.encode()).hexdigest() in line
    assert ctx["exporters"]["redis_password"] != NEW_KEY  # the exporter logs in with redis_exporter_password
