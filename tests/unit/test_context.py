"""The one template context builder: defaults < inventory < derived values, a pure function of the inventory."""

from __future__ import annotations

import hashlib
import pathlib

import pytest

from test_inventory import SECRETS, write_inventory
from roles.postgres import sql
from tsdeploy import scram, tuning
from tsdeploy.context import build_context
from tsdeploy.inventory import load


@pytest.fixture
def inventory_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_inventory(tmp_path)


def test_role_defaults_fill_what_the_inventory_leaves_out(inventory_path: pathlib.Path) -> None:
    ctx = build_context(load(inventory_path), "db1")
    assert ctx["postgres"]["db_name"] == "talentsphere"
    assert ctx["postgres"]["port"] == 5432


def test_inventory_values_override_role_defaults(tmp_path: pathlib.Path) -> None:
    ctx = build_context(load(write_inventory(tmp_path, main_overrides={"redis_maxmemory": "1GB"})), "cache1")
    assert ctx["redis"]["maxmemory"] == "1gb"


@pytest.mark.parametrize(("release", "postgresql", "python"), [("bookworm", 15, "3.11"), ("trixie", 17, "3.13")])
def test_versions_follow_the_debian_release(tmp_path: pathlib.Path, release: str, postgresql: int,
                                            python: str) -> None:
    ctx = build_context(load(write_inventory(tmp_path, main_overrides={"debian_release": release})), "db1")
    assert ctx["postgres"]["version"] == postgresql
    assert ctx["postgres"]["conf_dir"] == f"/etc/postgresql/{postgresql}/main"
    assert ctx["host"]["python_version"] == python


def test_zero_app_workers_means_two_per_cpu_plus_one(tmp_path: pathlib.Path) -> None:
    path = write_inventory(tmp_path, main_overrides={"app_workers": 0},
                           host_overrides={"app1": {"host_cpus": 4}})
    assert build_context(load(path), "app1")["app"]["workers"] == 9


def test_the_default_is_four_threads_per_worker_on_the_gthread_worker(inventory_path: pathlib.Path) -> None:
    app = build_context(load(inventory_path), "app1")["app"]
    assert (app["threads"], app["worker_class"]) == (4, "gthread")


def test_one_thread_per_worker_keeps_the_sync_worker(tmp_path: pathlib.Path) -> None:
    app = build_context(load(write_inventory(tmp_path, main_overrides={"app_threads": 1})), "app1")["app"]
    assert (app["threads"], app["worker_class"]) == (1, "sync")


def test_workers_are_recycled_by_memory_not_by_count_by_default(inventory_path: pathlib.Path) -> None:
    app = build_context(load(inventory_path), "app1")["app"]
    assert (app["max_requests"], app["worker_max_memory"], app["preload"]) == (0, 256 * 2**20, False)


def test_app_threads_above_one_choose_the_gthread_worker(tmp_path: pathlib.Path) -> None:
    app = build_context(load(write_inventory(tmp_path, main_overrides={"app_threads": 4})), "app1")["app"]
    assert (app["threads"], app["worker_class"]) == (4, "gthread")


def test_threads_leave_max_connections_alone_because_they_share_the_sized_pool(tmp_path: pathlib.Path) -> None:
    def max_connections(threads: int) -> str:
        path = write_inventory(tmp_path / f"threads-{threads}", main_overrides={"app_threads": threads})
        settings = build_context(load(path), "db1")["postgres"]["settings"]
        return {setting["name"]: setting for setting in settings}["max_connections"]["value"]

    assert max_connections(8) == max_connections(1)


def test_max_connections_comes_from_the_topology(tmp_path: pathlib.Path) -> None:
    path = write_inventory(tmp_path, main_overrides={"app_workers": 3, "app_db_pool_size": 4,
                                                     "app_db_max_overflow": 2,
                                                     "postgresql_connection_headroom": 7})
    pg = build_context(load(path), "db1")["postgres"]
    settings = {s["name"]: s for s in pg["settings"]}
    # 2 app hosts x 3 workers x (4 + 2) + 7
    assert settings["max_connections"]["value"] == "43"
    assert "2 app hosts x 3 workers" in settings["max_connections"]["reason"]
    assert pg["connection_limit"] == 36


def test_every_postgresql_setting_has_a_reason(inventory_path: pathlib.Path) -> None:
    for setting in build_context(load(inventory_path), "db1")["postgres"]["settings"]:
        assert setting["reason"], setting["name"]


def test_slow_query_threshold_becomes_log_min_duration_statement_in_ms(tmp_path: pathlib.Path) -> None:
    path = write_inventory(tmp_path, main_overrides={"app_slow_query_threshold": 1.5})
    settings = {s["name"]: s["value"] for s in build_context(load(path), "db1")["postgres"]["settings"]}
    assert settings["log_min_duration_statement"] == "1500"


def test_peers_list_every_group_by_private_address(inventory_path: pathlib.Path) -> None:
    peers = build_context(load(inventory_path), "lb1")["peers"]
    assert [p["address"] for p in peers["app"]] == ["10.0.0.12", "10.0.0.13"]
    assert peers["db"] == [{"name": "db1", "address": "10.0.0.10"}]


def test_firewall_opens_postgresql_only_to_app_hosts(inventory_path: pathlib.Path) -> None:
    rules = {r["port"]: r for r in build_context(load(inventory_path), "db1")["common"]["firewall_rules"]}
    assert set(rules) == {22, 5432}
    assert rules[5432]["sources"] == ["10.0.0.12", "10.0.0.13"]


def test_firewall_opens_the_app_port_only_to_lb_hosts(inventory_path: pathlib.Path) -> None:
    rules = {r["port"]: r for r in build_context(load(inventory_path), "app1")["common"]["firewall_rules"]}
    assert rules[8000]["sources"] == ["10.0.0.14"]
    assert 5432 not in rules and 80 not in rules


def test_only_lb_hosts_open_http_and_https(inventory_path: pathlib.Path) -> None:
    rules = {r["port"] for r in build_context(load(inventory_path), "lb1")["common"]["firewall_rules"]}
    assert rules == {22, 80, 443}


def test_urls_point_at_the_peers_with_escaped_credentials(tmp_path: pathlib.Path) -> None:
    secrets = dict(SECRETS, vault_postgresql_app_password="p@ss/word:with-specials-9f3Kq7Lx2W")
    app = build_context(load(write_inventory(tmp_path, secrets=secrets)), "app1")["app"]
    assert app["database_url"].startswith("postgresql+psycopg2://talentsphere:p%40ss%2Fword%3Awith-specials-9f3Kq7Lx2W"
                                          "@10.0.0.10:5432/talentsphere?sslmode=verify-full")
    assert app["redis_url"].startswith("rediss://talentsphere:")
    assert app["redis_url"].endswith("@10.0.0.11:6380/0?ssl_ca_certs=/etc/ssl/tsdeploy/ca.pem")


def test_redis_acl_gets_sha256_hashes_not_passwords(inventory_path: pathlib.Path) -> None:
    redis = build_context(load(inventory_path), "cache1")["redis"]
    assert len(redis["app_password_sha256"]) == 64
    assert redis["app_password_sha256"] != SECRETS["vault_redis_app_password"]


def test_the_context_is_a_pure_function_of_the_inventory(inventory_path: pathlib.Path) -> None:
    assert build_context(load(inventory_path), "db1") == build_context(load(inventory_path), "db1")


def test_scram_verifier_matches_its_password_and_nothing_else() -> None:
    stored = scram.verifier("correct horse battery staple")
    parameters = stored.split("$")[1]
    digest = hashlib.sha256(stored.encode()).hexdigest()  # what the login_role fact reads instead of the verifier
    assert sql.password_matches(parameters, digest, "correct horse battery staple")
    assert not sql.password_matches(parameters, digest, "another password")
    assert not sql.password_matches("", hashlib.sha256(b"md5abcdef").hexdigest(), "correct horse battery staple")


def test_scram_verifier_matches_postgresqls_format() -> None:
    # Fixed salt: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, all base64.
    stored = scram.verifier("secret", salt=b"0123456789abcdef", iterations=4096)
    assert stored.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert len(stored.split("$")[2].split(":")) == 2


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
def test_the_deploy_drops_pgtunes_lz4_warning_because_debians_postgresql_is_built_with_lz4(
        tmp_path: pathlib.Path, release: str) -> None:
    pg = build_context(load(write_inventory(tmp_path, main_overrides={"debian_release": release})), "db1")["postgres"]
    settings = {s["name"]: s for s in pg["settings"]}
    assert settings["wal_compression"]["value"] == "lz4"
    assert "built --with-lz4" in settings["wal_compression"]["reason"]
    assert not [warning for warning in pg["warnings"] if "lz4" in warning]


def test_pgtune_itself_still_warns_about_lz4() -> None:
    tuned = tuning.tune(memory=4 * 1024**3, cpus=2, storage="ssd", profile="web", pg_version=15, connections=100)
    assert "wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4" in tuned.warnings
