"""Templates of the common, postgres and redis roles, rendered through the one path (StrictUndefined)."""

from __future__ import annotations

import pathlib
import re

import jinja2
import pytest

from test_inventory import SECRETS, write_inventory
from tsdeploy import TEMPLATES_DIR
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

ALL_TEMPLATES = sorted(p.relative_to(TEMPLATES_DIR).as_posix() for p in TEMPLATES_DIR.rglob("*.j2"))
CORE_TEMPLATES = [t for t in ALL_TEMPLATES if t.split("/")[0] in ("common", "postgres", "redis")]


@pytest.fixture
def contexts(tmp_path: pathlib.Path) -> dict[str, dict]:
    inventory = load(write_inventory(tmp_path))
    return {host: build_context(inventory, host) for host in inventory.hosts}


@pytest.mark.parametrize("template", ALL_TEMPLATES)
def test_every_template_starts_with_the_managed_header(template: str) -> None:
    head = (TEMPLATES_DIR / template).read_text().splitlines()[:3]
    assert any(MANAGED_MARKER in line for line in head), f"{template}: no '{MANAGED_MARKER}' header"


#: redis's ACL file starts with its users; pgBackRest's db-side file and the WAL switch units need a backup host
#: (test_postgres_archiving.py).
NEED_A_BACKUP_HOST = ("postgres/pgbackrest.conf.j2", "postgres/wal-switch.service.j2", "postgres/wal-switch.timer.j2")


@pytest.mark.parametrize("template", [t for t in CORE_TEMPLATES
                                      if t != "redis/users.acl.j2" and t not in NEED_A_BACKUP_HOST])
def test_rendered_core_files_start_with_the_managed_header(template: str, contexts: dict[str, dict]) -> None:
    rendered = render(template, contexts["db1"] if "postgres" in template else contexts["cache1"])
    assert MANAGED_MARKER in "\n".join(rendered.splitlines()[:2])


def test_a_missing_context_key_is_an_error_not_an_empty_string(contexts: dict[str, dict]) -> None:
    ctx = dict(contexts["db1"])
    del ctx["postgres"]
    with pytest.raises(jinja2.UndefinedError):
        render("postgres/pg_hba.conf.j2", ctx)


def test_pg_hba_allows_only_local_peer_and_hostssl_scram_from_app_hosts(contexts: dict[str, dict]) -> None:
    lines = [line.split() for line in render("postgres/pg_hba.conf.j2", contexts["db1"]).splitlines()
             if line and not line.startswith("#")]
    assert lines == [
        ["local", "all", "all", "peer"],
        ["hostssl", "talentsphere", "talentsphere", "10.0.0.12/32", "scram-sha-256"],
        ["hostssl", "talentsphere", "talentsphere", "10.0.0.13/32", "scram-sha-256"],
        ["hostssl", "talentsphere", "talentsphere_owner", "10.0.0.12/32", "scram-sha-256"],
        ["hostssl", "talentsphere", "talentsphere_owner", "10.0.0.13/32", "scram-sha-256"],
    ]


def test_postgresql_drop_in_explains_every_setting(contexts: dict[str, dict]) -> None:
    lines = render("postgres/tsdeploy.conf.j2", contexts["db1"]).splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[index - 1].startswith("# "), f"no reason above {line!r}"


def test_postgresql_drop_in_has_the_baseline_settings(contexts: dict[str, dict]) -> None:
    text = render("postgres/tsdeploy.conf.j2", contexts["db1"])
    for expected in ("listen_addresses = 'localhost,10.0.0.10'", "password_encryption = 'scram-sha-256'",
                     "ssl = on", "ssl_min_protocol_version = 'TLSv1.2'",
                     "shared_preload_libraries = 'pg_stat_statements'", "log_connections = on",
                     "log_statement = 'ddl'", "log_lock_waits = on",
                     "ssl_cert_file = '/etc/postgresql/15/main/server.crt'"):
        assert f"\n{expected}\n" in text, expected
    assert "snakeoil.pem" not in text


def test_redis_acl_turns_default_off_and_confines_the_app_user(contexts: dict[str, dict]) -> None:
    lines = render("redis/users.acl.j2", contexts["cache1"]).splitlines()
    assert lines[0].startswith("user default off")
    app = next(line for line in lines if line.startswith("user talentsphere "))
    assert "~ts:* " in app and app.endswith("+@all -@dangerous -@admin")


def test_redis_acl_holds_no_plaintext_password(contexts: dict[str, dict]) -> None:
    text = render("redis/users.acl.j2", contexts["cache1"])
    for name in ("vault_redis_app_password", "vault_redis_admin_password"):
        assert SECRETS[name] not in text
    # Redis rejects any ACL line that is not a user directive, comments included.
    assert all(line.startswith("user ") for line in text.splitlines())


def test_redis_binds_loopback_and_the_private_address_in_protected_mode(contexts: dict[str, dict]) -> None:
    text = render("redis/redis.conf.j2", contexts["cache1"])
    assert "\nbind 127.0.0.1 -::1 10.0.0.11\n" in text
    assert "\nprotected-mode yes\n" in text
    for command in ("debug", "module"):
        assert f"\nenable-{command}-command no\n" in text


def test_redis_evicts_only_keys_with_a_ttl_by_default(contexts: dict[str, dict]) -> None:
    # Generation counters and the view buffer have no TTL; only volatile-* leaves them alone.
    assert "\nmaxmemory-policy volatile-lru\n" in render("redis/redis.conf.j2", contexts["cache1"])


def test_redis_eviction_policy_comes_from_the_inventory(tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path, main_overrides={"redis_maxmemory_policy": "volatile-ttl"}))
    text = render("redis/redis.conf.j2", build_context(inventory, "cache1"))
    assert "\nmaxmemory-policy volatile-ttl\n" in text


def test_sshd_drop_in_meets_the_ssh_baseline(contexts: dict[str, dict]) -> None:
    text = render("common/sshd_hardening.conf.j2", contexts["app1"])
    for expected in ("PasswordAuthentication no", "PermitRootLogin no", "MaxAuthTries 4", "X11Forwarding no",
                     "AllowAgentForwarding no", "AllowTcpForwarding no", "PermitEmptyPasswords no"):
        assert f"\n{expected}\n" in text


def test_nftables_drops_inbound_and_opens_postgresql_to_app_hosts_only(contexts: dict[str, dict]) -> None:
    text = render("common/nftables.conf.j2", contexts["db1"])
    assert "policy drop;" in text
    assert "ip saddr { 10.0.0.12, 10.0.0.13 } tcp dport 5432 accept" in text
    assert "dport 6379" not in text and "dport 80 " not in text
