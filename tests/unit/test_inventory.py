"""The inventory loader: real ansible-core on real files (hosts.yml, group_vars, an encrypted vault)."""

from __future__ import annotations

import hashlib
import pathlib
from typing import Any

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from tsdeploy.context import build_context
from tsdeploy.inventory import InventoryError, load
from tsdeploy.pyinfra_inventory import groups as pyinfra_groups

VAULT_PASSWORD = "unit-test-vault-password"
#: Test secrets that pass the secret checks (64 hex digits each), derived from their names: never used elsewhere.
SECRETS = {name: hashlib.sha256(f"tsdeploy unit test {name}".encode()).hexdigest() for name in (
    "vault_postgresql_app_password", "vault_postgresql_owner_password", "vault_redis_app_password",
    "vault_redis_admin_password", "vault_app_secret_key")}


def write_inventory(root: pathlib.Path, *, host_overrides: dict[str, dict[str, Any]] | None = None,
                    main_overrides: dict[str, Any] | None = None, secrets: dict[str, str] | None = None,
                    vault_password_in_cfg: bool = True) -> pathlib.Path:
    """A split inventory (db1, cache1, app1, app2, lb1) in `root`/inventory with an encrypted vault."""
    inventory = root / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    pki = root / "pki"
    pki.mkdir()
    for name in ("ca.crt", "host.crt", "host.key"):
        (pki / name).write_text("-----BEGIN PLACEHOLDER-----\n")
    layout = {"db1": ("db", "10.0.0.10"), "cache1": ("cache", "10.0.0.11"), "app1": ("app", "10.0.0.12"),
              "app2": ("app", "10.0.0.13"), "lb1": ("lb", "10.0.0.14")}
    hosts = {name: {"ansible_host": address, "ansible_user": "deploy", "private_address": address,
                    "host_memory": "4GB", "host_cpus": 2, "tls_cert_file": str(pki / "host.crt"),
                    "tls_key_file": str(pki / "host.key"),
                    "ansible_ssh_common_args": "-o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=yes"}
             for name, (_, address) in layout.items()}
    for name, overrides in (host_overrides or {}).items():
        hosts[name].update(overrides)
    children = {group: {"hosts": {name: {} for name, (g, _) in layout.items() if g == group}}
                for group in ("db", "cache", "app", "lb")}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts, "children": children}}))
    main = {"debian_release": "bookworm", "tls_ca_cert_file": str(pki / "ca.crt"),
            "ssh_allow_from": ["10.0.0.0/24"], "nginx_server_name": "jobs.example.com",
            **{name.removeprefix("vault_"): f"{{{{ {name} }}}}" for name in SECRETS}}
    main.update(main_overrides or {})
    (inventory / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(main))
    password_file = root / "vault-pass"
    password_file.write_text(VAULT_PASSWORD)
    password_file.chmod(0o600)
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    ciphertext = vault.encrypt(yaml.safe_dump(secrets if secrets is not None else SECRETS)).decode()
    (inventory / "group_vars" / "all" / "vault.yml").write_text(ciphertext)
    if vault_password_in_cfg:
        (inventory / "ansible.cfg").write_text(f"[defaults]\nvault_password_file = {password_file}\n")
    return inventory


def problems_of(inventory: pathlib.Path) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load(inventory)
    return raised.value.problems


def test_groups_and_hosts_come_from_hosts_yml(tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path))
    assert inventory.groups["app"] == ["app1", "app2"]
    assert inventory.hosts_in("db") == ["db1"]
    assert inventory.groups_of("lb1") == ["lb"]


def test_vault_references_are_templated_with_the_password_from_ansible_cfg(tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path))
    assert inventory.hostvars["db1"]["postgresql_app_password"] == SECRETS["vault_postgresql_app_password"]
    assert "vault_postgresql_app_password" not in inventory.hostvars["db1"]


def test_vault_password_file_can_come_from_the_environment(tmp_path: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_inventory(tmp_path, vault_password_in_cfg=False)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-pass"))
    assert load(path).hostvars["app1"]["app_secret_key"] == SECRETS["vault_app_secret_key"]


def test_values_are_plain_python_types(tmp_path: pathlib.Path) -> None:
    hostvars = load(write_inventory(tmp_path)).hostvars["db1"]
    assert type(hostvars["host_cpus"]) is int
    assert type(hostvars["host_memory"]) is str


def test_a_bad_size_names_the_variable_the_file_the_value_and_the_fix(tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, host_overrides={"db1": {"host_memory": "4XB"}}))
    assert len(problems) == 1
    problem = problems[0]
    assert problem.startswith("db1: host_memory = '4XB' (inventory/hosts.yml:")
    assert "is not a size; fix: write a positive whole number of bytes, or a whole number and a unit" in problem


def test_every_problem_is_reported_at_once(tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(
        tmp_path,
        host_overrides={"app1": {"host_cpus": 0}, "lb1": {"private_address": "10.0.0.300"}},
        main_overrides={"app_port": 70000, "ssh_allow_from": ["10.0.0.1/24"], "app_workers": -1},
    ))
    text = "\n".join(problems)
    assert "app1: host_cpus = 0" in text
    assert "lb1: private_address = '10.0.0.300'" in text and "is not an IP address" in text
    assert "app_port = 70000 (inventory/group_vars/all/main.yml:" in text
    assert "ssh_allow_from = ['10.0.0.1/24']" in text and "use the network address" in text
    assert "app_workers = -1" in text


@pytest.mark.parametrize("threads, what", [
    (0, "is out of range; fix: set a whole number between 1 and 32"),
    (33, "is out of range; fix: set a whole number between 1 and 32"),
    ("4", "is not a whole number; fix: set a whole number >= 1"),
])
def test_app_threads_outside_1_to_32_names_each_app_host_the_value_and_the_fix(
        tmp_path: pathlib.Path, threads: object, what: str) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"app_threads": threads}))
    assert [problem.split(":", 1)[0] for problem in problems] == ["app1", "app2"]
    assert problems[0].startswith(f"app1: app_threads = {threads!r} (inventory/group_vars/all/main.yml:")
    assert problems[0].endswith(what)


def test_app_threads_up_to_the_pool_plus_overflow_are_accepted(tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path, main_overrides={"app_threads": 10}))
    assert inventory.hostvars["app1"]["app_threads"] == 10


def test_more_threads_than_pool_plus_overflow_names_the_variables_their_origins_and_the_fix(
        tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"app_threads": 8, "app_db_max_overflow": 2}))
    assert [problem.split(":", 1)[0] for problem in problems] == ["app1", "app2"]
    problem = problems[0]
    assert problem.startswith("app1: app_threads = 8 (inventory/group_vars/all/main.yml:")
    assert ("exceeds app_db_pool_size + app_db_max_overflow = 5 (roles/app/variables.py) + 2 "
            "(inventory/group_vars/all/main.yml:") in problem
    assert "a thread beyond the pool waits (up to app_db_pool_timeout, then its request fails)" in problem
    assert "fix: set app_threads to at most 7, or raise app_db_max_overflow" in problem


def test_a_bad_pool_size_is_reported_once_not_again_as_too_few_connections_for_the_threads(
        tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"app_threads": 8, "app_db_pool_size": 0}))
    assert all("app_db_pool_size = 0" in problem for problem in problems)
    assert len(problems) == 2  # app1 and app2: PostgreSQL sizes max_connections from the app hosts' values


@pytest.mark.parametrize("allowed", [[], ["10.20.0.0/24", "192.0.2.7", "2001:db8::/48"]])
def test_metrics_allow_takes_no_entry_or_addresses_and_networks(tmp_path: pathlib.Path, allowed: list[str]) -> None:
    inventory = load(write_inventory(tmp_path, main_overrides={"nginx_metrics_allow": allowed}))
    assert inventory.hostvars["lb1"]["nginx_metrics_allow"] == allowed


@pytest.mark.parametrize("value, what, fix", [
    (["10.20.0.0/24", "10.20.0.1/16"], "contains '10.20.0.1/16', not a network in CIDR form",
     "use the network address"),
    (["prometheus.example.com"], "contains 'prometheus.example.com', not a network in CIDR form",
     "use the network address"),
    ("10.20.0.0/24", "is not a list of CIDRs", "write a YAML list"),
])
def test_a_bad_metrics_allow_is_reported_once_for_the_lb_with_the_value_and_the_fix(
        tmp_path: pathlib.Path, value: object, what: str, fix: str) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"nginx_metrics_allow": value}))
    assert len(problems) == 1
    assert problems[0].startswith(f"lb1: nginx_metrics_allow = {value!r} (inventory/group_vars/all/main.yml:")
    assert f"{what}; fix: {fix}" in problems[0]


def test_a_metrics_allow_left_empty_in_yaml_asks_for_an_empty_list(tmp_path: pathlib.Path) -> None:
    # `nginx_metrics_allow:` with nothing after it is YAML null, not "nobody".
    problems = problems_of(write_inventory(tmp_path, main_overrides={"nginx_metrics_allow": None}))
    assert len(problems) == 1
    assert problems[0].startswith("lb1: nginx_metrics_allow = None (")
    assert "is not a list of CIDRs; fix: write a YAML list" in problems[0] and "or [] for nobody" in problems[0]


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"])
def test_policies_that_evict_only_keys_with_a_ttl_are_accepted(tmp_path: pathlib.Path, policy: str) -> None:
    inventory = load(write_inventory(tmp_path, main_overrides={"redis_maxmemory_policy": policy}))
    assert inventory.hostvars["cache1"]["redis_maxmemory_policy"] == policy


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_an_allkeys_policy_is_refused_because_it_may_evict_counters_and_the_view_buffer(
        tmp_path: pathlib.Path, policy: str) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"redis_maxmemory_policy": policy}))
    assert len(problems) == 1
    problem = problems[0]
    assert problem.startswith(f"cache1: redis_maxmemory_policy = '{policy}' (inventory/group_vars/all/main.yml:")
    assert "may evict the app's keys without a TTL (cache generation counters, view-count buffer)" in problem
    assert "fix: use volatile-lru (the default) or another volatile-* policy" in problem


def test_noeviction_is_refused_because_a_full_redis_would_refuse_invalidations(tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"redis_maxmemory_policy": "noeviction"}))
    assert len(problems) == 1
    assert problems[0].startswith("cache1: redis_maxmemory_policy = 'noeviction' (inventory/group_vars/all/main.yml:")
    assert "an invalidation (INCR) would be refused and old entries served until their TTL ends" in problems[0]
    assert "fix: use volatile-lru (the default)" in problems[0]


@pytest.mark.parametrize("value", ["volatile_lru", "Volatile-LRU", 3])
def test_an_unknown_eviction_policy_names_the_value_and_lists_the_accepted_ones(
        tmp_path: pathlib.Path, value: object) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"redis_maxmemory_policy": value}))
    assert len(problems) == 1
    assert problems[0].startswith(f"cache1: redis_maxmemory_policy = {value!r} (inventory/group_vars/all/main.yml:")
    assert problems[0].endswith("is not a Redis maxmemory-policy; fix: use one of: volatile-lru, volatile-lfu, "
                                "volatile-random, volatile-ttl")


def test_the_eviction_policy_defaults_to_volatile_lru(tmp_path: pathlib.Path) -> None:
    ctx = build_context(load(write_inventory(tmp_path)), "cache1")
    assert ctx["redis"]["maxmemory_policy"] == "volatile-lru"


def test_a_short_secret_is_reported_without_showing_it(tmp_path: pathlib.Path) -> None:
    secrets = dict(SECRETS, vault_redis_app_password="short")
    problems = problems_of(write_inventory(tmp_path, secrets=secrets))
    assert any("redis_app_password = (secret, not shown) (inventory/group_vars/all/vault.yml" in p for p in problems)
    assert all("'short'" not in p for p in problems)


def test_a_missing_vault_secret_names_the_variable_and_the_fix(tmp_path: pathlib.Path) -> None:
    secrets = {k: v for k, v in SECRETS.items() if k != "vault_app_secret_key"}
    problems = problems_of(write_inventory(tmp_path, secrets=secrets))
    assert any(p.startswith("app1: app_secret_key (inventory/group_vars/all/main.yml") and "vault" in p
               for p in problems)


def test_a_wrong_vault_password_is_an_error(tmp_path: pathlib.Path) -> None:
    path = write_inventory(tmp_path)
    (tmp_path / "vault-pass").write_text("not-the-password")
    with pytest.raises(Exception, match="[Dd]ecrypt"):
        load(path)


def test_an_empty_group_is_reported(tmp_path: pathlib.Path) -> None:
    path = write_inventory(tmp_path)
    document = yaml.safe_load((path / "hosts.yml").read_text())
    document["all"]["children"]["lb"]["hosts"] = {}
    del document["all"]["hosts"]["lb1"]
    (path / "hosts.yml").write_text(yaml.safe_dump(document))
    assert any(p.startswith("group 'lb' has no hosts") for p in problems_of(path))


def test_a_missing_tls_file_is_reported(tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, host_overrides={"db1": {"tls_key_file": "/nonexistent.key"}}))
    assert len(problems) == 1
    assert problems[0].startswith("db1: tls_key_file = '/nonexistent.key' (inventory/hosts.yml:")
    assert "is not a readable file on the control node; fix:" in problems[0]


def test_no_inventory_in_the_directory_is_an_error_with_the_fix(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InventoryError, match="no inventory here; fix"):
        load(tmp_path)


def test_pyinfra_groups_carry_ssh_data_and_the_inventory_path(tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path))
    groups = pyinfra_groups(inventory)
    hosts = dict(groups["all"])
    assert groups["app"] == ["app1", "app2"]
    assert hosts["db1"]["ssh_hostname"] == "10.0.0.10"
    assert hosts["db1"]["ssh_user"] == "deploy"
    assert hosts["db1"]["ssh_known_hosts_file"] == "/tmp/kh"
    assert hosts["db1"]["ssh_strict_host_key_checking"] == "yes"
    assert hosts["db1"]["tsdeploy_inventory"] == str(inventory.path)


def test_an_owner_role_named_like_the_runtime_role_is_refused_with_the_fix(tmp_path: pathlib.Path) -> None:
    problems = problems_of(write_inventory(tmp_path, main_overrides={"postgresql_owner_user": "talentsphere"}))
    assert any(p.startswith("db1: postgresql_owner_user = 'talentsphere' (inventory/group_vars/all/main.yml") and
               "is also postgresql_app_user" in p and "fix: give postgresql_owner_user another name" in p
               for p in problems), problems


def test_an_owner_password_equal_to_the_runtime_password_is_refused_without_showing_it(tmp_path: pathlib.Path) -> None:
    same = SECRETS["vault_postgresql_app_password"]
    problems = problems_of(write_inventory(tmp_path, secrets=dict(SECRETS, vault_postgresql_owner_password=same)))
    assert any(p.startswith("db1: postgresql_owner_password (") and "equals postgresql_app_password" in p and
               "fix: set vault_postgresql_owner_password to its own random value" in p for p in problems), problems
    assert all(same not in p for p in problems)


def test_the_owner_role_gets_its_own_url_in_a_root_only_file_the_app_does_not_read(tmp_path: pathlib.Path) -> None:
    ctx = build_context(load(write_inventory(tmp_path)), "app1")
    app = ctx["app"]
    owner_url, runtime_url = app["owner_env"]["DATABASE_URL"], app["env"]["DATABASE_URL"]
    assert "//talentsphere_owner:" in owner_url and "//talentsphere:" in runtime_url
    assert SECRETS["vault_postgresql_owner_password"] not in runtime_url
    assert owner_url.split("@", 1)[1] == runtime_url.split("@", 1)[1]  # same server, database and TLS checks
    assert app["owner_env_file"] != app["env_file"]


def test_a_vars_file_added_or_removed_between_two_loads_in_one_process_is_seen(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    extra = inventory / "group_vars" / "all" / "zz-extra.yml"
    assert load(inventory).hostvars["app1"].get("app_seed_jobs") != 7
    extra.write_text("app_seed_jobs: 7\n")
    assert load(inventory).hostvars["app1"]["app_seed_jobs"] == 7
    extra.unlink()
    assert load(inventory).hostvars["app1"].get("app_seed_jobs") != 7  # read again, not remembered (nor an error)
