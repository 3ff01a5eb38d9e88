"""End to end: `tsdeploy deploy` on real lab hosts; a second deploy changes nothing; ports per role.

Split topology on Debian 12 (db1, backup1, cache1, app1, app2, lb1) and one Debian 13 host. Each lab is deployed
once per session by the `deployed_split` / `deployed_trixie` fixtures (tests/e2e/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from roles.redis.variables import VARIABLES as REDIS_VARIABLES
from site_client import Lab, redis_cli

if TYPE_CHECKING:
    from conftest import Deployment
    from tsdeploy.lab import Lab

    Redeploy = Callable[[Lab], tuple[str, float, list[str]]]

pytestmark = pytest.mark.e2e

SUMMARY = re.compile(r"^changed: (\d+) operations on (\d+) hosts$")
#: The lab keeps the redis role's default port: Redis's TLS port.
REDIS_PORT = next(variable.default for variable in REDIS_VARIABLES if variable.name == "redis_port")


def ssh(deployment: Deployment, host: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` on a lab host as the deploy user over the lab's ssh_config."""
    return subprocess.run(["ssh", "-F", str(deployment.lab.ssh_config), host, command],
                          capture_output=True, text=True, timeout=60, check=False)


def tcp_open(deployment: Deployment, from_host: str, address: str, port: int) -> bool:
    """Whether a TCP connection from `from_host` to address:port succeeds within 3 s (nftables drops)."""
    result = ssh(deployment, from_host, f"timeout 3 bash -c '</dev/tcp/{address}/{port}' && echo open")
    return result.stdout.strip() == "open"


def test_cold_deploy_of_the_split_lab_changes_operations_on_every_host(deployed_split: Deployment) -> None:
    match = SUMMARY.match(deployed_split.summary)
    assert match, f"last line was {deployed_split.summary!r}"
    assert int(match.group(1)) > 0
    assert int(match.group(2)) == len(deployed_split.lab.hosts)  # every host: db1, backup1, cache1, app1, app2, lb1
    print(f"cold deploy (split, bookworm): {deployed_split.seconds:.0f} s")


@pytest.mark.parametrize(("host", "unit"), [
    ("db1", "postgresql@15-main"), ("cache1", "redis-server"), ("db1", "nftables"), ("lb1", "ssh"),
])
def test_services_are_active_after_deploy(deployed_split: Deployment, host: str, unit: str) -> None:
    assert ssh(deployed_split, host, f"systemctl is-active {unit}").stdout.strip() == "active"


def test_pg_hba_rejects_network_logins_from_a_host_that_is_not_an_app_host(deployed_split: Deployment) -> None:
    # The owner role: db1 also runs PgBouncer, whose address pg_hba admits for the runtime role.
    db = deployed_split.lab.hosts["db1"]
    result = ssh(deployed_split, "db1", f"psql 'host={db} dbname=talentsphere user=talentsphere_owner "
                                        "sslmode=require connect_timeout=3' -XAtc 'SELECT 1'")
    assert "no pg_hba.conf entry" in result.stderr, result.stderr


def test_app_role_has_no_privileges_and_a_connection_limit(deployed_split: Deployment) -> None:
    query = ("SELECT rolsuper, rolcreatedb, rolcreaterole, rolconnlimit > 0, rolpassword LIKE 'SCRAM-SHA-256$%' "
             "FROM pg_authid WHERE rolname = 'talentsphere'")
    result = ssh(deployed_split, "db1", f"sudo runuser -u postgres -- psql -XAtc \"{query}\"")
    assert result.stdout.strip() == "f|f|f|t|t", result.stderr


def test_the_app_reaches_postgresql_only_through_pgbouncer(deployed_split: Deployment) -> None:
    site = Lab(deployed_split)
    for _ in range(10):  # searches nobody made before: cache misses that run SQL on the runtime role
        status, _ = site.request("GET", f"/api/jobs?q=pooler{uuid.uuid4().hex[:8]}")
        assert status == 200
    query = ("SELECT client_addr, count(*) FROM pg_stat_activity WHERE usename = 'talentsphere' "
             "GROUP BY 1 ORDER BY 1")
    result = ssh(deployed_split, "db1", f"sudo runuser -u postgres -- psql -XAtc \"{query}\"")
    sessions = dict(line.split("|") for line in result.stdout.split())
    # PgBouncer runs on db1 and reaches PostgreSQL on db1's private address; the app hosts open nothing.
    assert set(sessions) == {deployed_split.lab.hosts["db1"]}, (sessions, result.stderr)
    pools = ssh(deployed_split, "db1", "systemctl is-active pgbouncer")
    assert pools.stdout.strip() == "active"


def test_redis_default_user_is_off(deployed_split: Deployment) -> None:
    result = ssh(deployed_split, "cache1", f"{redis_cli(deployed_split.lab)} PING")
    assert "NOAUTH" in result.stdout or "WRONGPASS" in result.stdout, result.stdout


def test_redis_answers_over_tls_only(deployed_split: Deployment) -> None:
    lab = deployed_split.lab
    address = lab.hosts["cache1"]
    plain = subprocess.run(["ssh", "-F", str(lab.ssh_config), "cache1", f"timeout 5 redis-cli -h {address} -p "
                            f"{REDIS_PORT} PING"], capture_output=True, text=True, check=False)
    assert "NOAUTH" not in plain.stdout and "PONG" not in plain.stdout, plain.stdout
    # Redis's own port, 6379, is not served at all (nor opened in the firewall).
    assert not tcp_open(deployed_split, "app1", address, 6379)


@pytest.mark.parametrize(("service", "port"), [("db1", 5432), ("cache1", REDIS_PORT)])
def test_database_and_cache_ports_are_closed_from_the_load_balancer(deployed_split: Deployment, service: str,
                                                                     port: int) -> None:
    assert not tcp_open(deployed_split, "lb1", deployed_split.lab.hosts[service], port)


@pytest.mark.parametrize(("service", "port"), [("db1", 5432), ("cache1", REDIS_PORT)])
def test_database_and_cache_ports_are_open_from_an_app_host(deployed_split: Deployment, service: str,
                                                             port: int) -> None:
    assert tcp_open(deployed_split, "app1", deployed_split.lab.hosts[service], port)


def test_second_deploy_of_the_split_lab_changes_nothing(deployed_split: Deployment, redeploy: Redeploy) -> None:
    summary, seconds, changes = redeploy(deployed_split.lab)
    print(f"no-op re-deploy (split, bookworm): {seconds:.0f} s")
    assert summary == "changed: 0 operations on 0 hosts", "\n".join(changes)


def test_debian_13_single_host_deploys_postgresql_17(deployed_trixie: Deployment) -> None:
    assert SUMMARY.match(deployed_trixie.summary), deployed_trixie.summary
    print(f"cold deploy (single, trixie): {deployed_trixie.seconds:.0f} s")
    assert ssh(deployed_trixie, "ts1", "systemctl is-active postgresql@17-main").stdout.strip() == "active"


def test_second_deploy_of_the_debian_13_host_changes_nothing(deployed_trixie: Deployment,
                                                             redeploy: Redeploy) -> None:
    summary, seconds, changes = redeploy(deployed_trixie.lab)
    print(f"no-op re-deploy (single, trixie): {seconds:.0f} s")
    assert summary == "changed: 0 operations on 0 hosts", "\n".join(changes)
