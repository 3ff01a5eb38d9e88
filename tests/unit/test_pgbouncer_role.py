"""The pgbouncer role: its context on the lab's inventories, and the rendered pgbouncer.ini run by Debian's real
PgBouncer in front of a throwaway PostgreSQL cluster that holds the role's lookup function.

The cluster and PgBouncer run as the postgres account (as on a db host); the app role logs in with SCRAM
through PgBouncer over TLS, as the app does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

from local_postgres import CLUSTERS_NEED, cannot_run_clusters, throwaway_cluster
from redis_server import free_port
from roles.pgbouncer.context import server_connections
from test_rendering_golden import _lab_inventory
from tsdeploy import inventory as inventory_module
from tsdeploy import templating
from tsdeploy.context import build_context
from tsdeploy.lab import pki
from tsdeploy.lab.topology import hosts_of

APP_PASSWORD = "pgbouncer-test-app-password-0123456789"
POOLER_PASSWORD = "pgbouncer-test-pooler-password-0123456789"
#: The schema owner (the deploy's migrations): it has the app's password here, and still may not log in.
OWNER = "talentsphere_owner"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    return inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("split"), "split"))


def test_the_app_reaches_postgresql_through_the_pooler_and_the_owner_directly(split) -> None:
    app = build_context(split, "app1")["app"]
    assert "@198.18.0.10:6432/talentsphere?sslmode=verify-full" in app["env"]["DATABASE_URL"]
    assert "@198.18.0.10:5432/talentsphere?sslmode=verify-full" in app["owner_env"]["DATABASE_URL"]
    hba = templating.render("postgres/pg_hba.conf.j2", build_context(split, "db1"))
    lines = [line.split() for line in hba.splitlines() if line.startswith("hostssl")]
    from_app_hosts = {user for _, _, user, address, _ in lines if address in ("198.18.0.13/32", "198.18.0.14/32")}
    from_pooler = {user for _, _, user, address, _ in lines if address == "198.18.0.10/32"}
    assert from_app_hosts == {"talentsphere_owner"}, "the runtime role comes only through PgBouncer"
    assert from_pooler == {"pgbouncer", "talentsphere"}


def test_the_split_lab_runs_pgbouncer_beside_postgresql_and_reaches_it_over_tls(split) -> None:
    ctx = build_context(split, "db1")
    pgbouncer = ctx["pgbouncer"]
    # Over the private address with verify-full, not the socket: pg_hba's local lines stay peer-only.
    assert (pgbouncer["server_host"], pgbouncer["server_tls"]) == ("198.18.0.10", True)
    hba = templating.render("postgres/pg_hba.conf.j2", ctx)
    assert [line.split()[3] for line in hba.splitlines() if line.startswith("local")] == ["peer"]
    assert pgbouncer["listen"] == ["127.0.0.1", ctx["host"]["private_address"]]
    assert pgbouncer["max_db_connections"] == server_connections(split.hostvars["db1"] | {
        "pgbouncer_default_pool_size": 20, "pgbouncer_reserve_pool_size": 5}) == 25
    rules = [rule for rule in ctx["common"]["firewall_rules"] if rule["port"] == pgbouncer["port"]]
    assert rules and all(source in ("198.18.0.13", "198.18.0.14") for rule in rules
                         for source in rule["sources"]), rules


def _max_connections(root: pathlib.Path, layout) -> tuple[int, str]:
    postgres = build_context(inventory_module.load(_lab_inventory(root, "split", layout)), "db1")["postgres"]
    return postgres["max_connections"], postgres["settings"][0]["reason"]


@pytest.mark.parametrize("pooled", [True, False], ids=["behind-pgbouncer", "direct"])
def test_a_third_app_host_changes_max_connections_only_without_the_pooler(
        tmp_path: pathlib.Path, pooled: bool) -> None:
    layout = tuple((name, groups if pooled else tuple(g for g in groups if g != "pooler"))
                   for name, groups in hosts_of("split"))
    (tmp_path / "two").mkdir(), (tmp_path / "three").mkdir()
    two, reason = _max_connections(tmp_path / "two", layout)
    three, _ = _max_connections(tmp_path / "three", (*layout, ("app3", ("app",))))
    if pooled:
        # Sized from PgBouncer's server connections (pool 20 + reserve 5 on db1): scaling the app tier out
        # needs no PostgreSQL restart.
        assert three == two and "25 server connections of the poolers" in reason, (two, three, reason)
    else:
        assert three > two and "app hosts x" in reason, (two, three, reason)


def _started(command: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(100):
        probe = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True)
        if probe.returncode == 0:
            return process
        if process.poll() is not None:
            raise AssertionError(f"pgbouncer exited: {process.stdout.read() if process.stdout else ''}")
        time.sleep(0.1)
    raise AssertionError("pgbouncer did not listen")


@dataclasses.dataclass
class Pooled:
    """A throwaway cluster set up as the postgres role leaves a db host, with the rendered PgBouncer before it."""

    pg: Any
    port: int
    ca: str
    ctx: dict
    names: dict

    def connect(self, user: str, password: str, sslmode: str = "verify-full", timeout: int = 5):
        # As the app connects (talentsphere/db.py): its statement timeout in `options`, which PgBouncer drops;
        # the role setting gives the same one.
        return psycopg2.connect(host="127.0.0.1", port=self.port, dbname=self.names["db_name"], user=user,
                                password=password, sslmode=sslmode, sslrootcert=self.ca, connect_timeout=timeout,
                                options="-c statement_timeout=700")

    def stop_postgresql(self) -> None:
        self.pg.run(self.pg.bin / "pg_ctl", "-D", self.pg.data, "-m", "fast", "-w", "stop")

    def start_postgresql(self) -> None:
        self.pg.run(self.pg.bin / "pg_ctl", "-D", self.pg.data, "-w", "start", "-l", self.pg.base / "pg.log")


@contextlib.contextmanager
def pooled_cluster(split) -> Iterator[Pooled]:
    ctx = build_context(split, "db1")
    names = ctx["pgbouncer"]
    app, pooler, database = names["app_user"], names["auth_user"], names["db_name"]
    with throwaway_cluster("tspgb", free_port()) as pg:
        # As the postgres role leaves the db host: the runtime role with its SCRAM verifier and its statement
        # timeout, the pooler's login role, the lookup function; SCRAM for everyone but the local superuser.
        pg.admin(f"CREATE ROLE {app} LOGIN PASSWORD '{APP_PASSWORD}'")
        pg.admin(f"CREATE ROLE {pooler} LOGIN PASSWORD '{POOLER_PASSWORD}'")
        pg.admin(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{APP_PASSWORD}'")
        pg.admin(f"CREATE DATABASE {database} OWNER {OWNER}")
        pg.admin(f"GRANT CONNECT ON DATABASE {database} TO {app}")
        # The postgres role's checks and fixes (roles/postgres/database.py runs them with sql.ensure), and its
        # pg_hba.conf: PgBouncer reaches PostgreSQL over TLS on the host's address, with SCRAM.
        steps = ctx["postgres"]["pgbouncer"]
        for check, fix in ((steps["function_check"], steps["function_sql"]),
                           (steps["timeout_check"], steps["timeout_fix"])):
            assert pg.psql(check, database=database).stdout.strip() == "f"
            pg.psql(fix, database=database)
            assert pg.psql(check, database=database).stdout.strip() == "t", fix
        # PostgreSQL as the role configures it: TLS on a TCP address its certificate names (127.0.0.1 here),
        # pg_hba rendered for a pooler at that address.
        directory = pg.base / "pgbouncer"  # readable by postgres (pytest's tmp_path is root-only)
        directory.mkdir()
        ca = pki.ensure_ca(directory / "pki", "unit")
        cert, key = pki.ensure_host_cert(directory / "pki", ca, "db1", "127.0.0.1")
        for path in (directory, directory / "pki", *directory.rglob("*")):
            shutil.chown(path, "postgres")
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nssl = on\nssl_cert_file = '{cert}'\n"
                       f"ssl_key_file = '{key}'\n")
        ctx["postgres"] = {**ctx["postgres"], "pgbouncer": {**steps, "addresses": ["127.0.0.1"]}}
        (pg.data / "pg_hba.conf").write_text(templating.render("postgres/pg_hba.conf.j2", ctx))
        pg.run(pg.bin / "pg_ctl", "-D", pg.data, "-w", "restart", "-l", pg.base / "pg.log")

        port = free_port()
        ctx["pgbouncer"] = {**names, "listen": ["127.0.0.1"], "port": port, "socket_dir": "",
                            "server_host": "127.0.0.1", "server_port": pg.port, "conf_dir": str(directory),
                            "auth_password": POOLER_PASSWORD, "tls_cert": str(cert), "tls_key": str(key),
                            "tls_ca": str(ca[0])}
        (directory / "userlist.txt").write_text(templating.render("pgbouncer/userlist.txt.j2", ctx))
        (directory / "pgbouncer.ini").write_text(templating.render("pgbouncer/pgbouncer.ini.j2", ctx))
        (directory / "listen.ini").write_text(templating.render("pgbouncer/listen.ini.j2", ctx))
        shutil.chown(directory, "postgres")
        for path in directory.rglob("*"):
            shutil.chown(path, "postgres")
        process = _started(["runuser", "-u", "postgres", "--", "pgbouncer", str(directory / "pgbouncer.ini")], port)
        try:
            yield Pooled(pg, port, str(ca[0]), ctx, names)
        finally:
            process.terminate()
            process.wait(timeout=10)


NEEDS_PGBOUNCER = pytest.mark.skipif(cannot_run_clusters() or not shutil.which("pgbouncer"),
                                     reason=CLUSTERS_NEED + " and pgbouncer")


@NEEDS_PGBOUNCER
def test_the_app_role_logs_in_through_the_rendered_pgbouncer_with_scram_over_tls_and_nothing_else_does(
        split) -> None:
    with pooled_cluster(split) as pooled:
        app, pooler = pooled.names["app_user"], pooled.names["auth_user"]
        connect = pooled.connect
        with connect(app, APP_PASSWORD) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('statement_timeout'), "
                           "pg_try_advisory_xact_lock(1)")
            assert cursor.fetchone() == (app, "5s", True)  # the lab's app_db_statement_timeout
        # A wrong password: PgBouncer's own wording, not PostgreSQL's "password authentication failed".
        with pytest.raises(psycopg2.OperationalError, match="SASL authentication failed"):
            connect(app, "not-the-password-at-all-0123456789")
        # Only the runtime role: the lookup function answers for no other role (the superuser, the owner).
        for user in ("postgres", OWNER):
            with pytest.raises(psycopg2.OperationalError, match="no such user"):
                connect(user, APP_PASSWORD)
        # The pooler's own user (its password is on this host only) may call the lookup and nothing else.
        with connect(pooler, POOLER_PASSWORD) as connection, connection.cursor() as cursor:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("SELECT rolpassword FROM pg_authid")
        with pytest.raises(psycopg2.OperationalError):
            connect(app, APP_PASSWORD, sslmode="disable")


def _select_one(connection) -> None:  # noqa: ANN001
    try:
        connection.cursor().execute("SELECT 1")
    finally:
        connection.close()


def _seconds_until(action) -> tuple[float, BaseException | None]:  # noqa: ANN001
    start = time.monotonic()
    try:
        action()
    except psycopg2.Error as error:
        return time.monotonic() - start, error
    return time.monotonic() - start, None


@NEEDS_PGBOUNCER
def test_with_postgresql_down_pgbouncer_fails_fast_and_serves_again_within_the_apps_breaker_interval(
        split) -> None:
    # PgBouncer's defaults would hold each query 120 s (query_wait_timeout) and refuse to reconnect for 15 s
    # after a failure (server_login_retry): the app behind it must fail and recover as when it connects directly.
    with pooled_cluster(split) as pooled:
        settings, app = pooled.ctx["pgbouncer"], pooled.names["app_user"]
        wait, retry = settings["query_wait_timeout"], settings["server_login_retry"]
        assert (wait, retry) == (2, 0.5)  # the lab's app_db_connect_timeout and app_db_breaker_cooldown
        client = pooled.connect(app, APP_PASSWORD)
        client.autocommit = True
        client.cursor().execute("SELECT 1")
        pooled.stop_postgresql()

        # A connection PgBouncer had logged in: its next query waits for a server connection, then fails.
        queued, error = _seconds_until(lambda: client.cursor().execute("SELECT 1"))
        assert error is not None and queued <= wait + 1.5, (queued, error)
        # A new login (its password is looked up in PostgreSQL) fails as fast.
        login, error = _seconds_until(lambda: pooled.connect(app, APP_PASSWORD, timeout=30).close())
        assert error is not None and login <= wait + 1.5, (login, error)

        pooled.start_postgresql()
        back = time.monotonic()
        failures = []
        while True:
            elapsed, error = _seconds_until(lambda: _select_one(pooled.connect(app, APP_PASSWORD)))
            if error is None:
                break
            failures.append(str(error).strip())
            assert time.monotonic() - back <= 30, f"PgBouncer did not serve again within 30 s: {failures[-3:]}"
            time.sleep(0.05)
        served = time.monotonic() - back
        print(f"\nPostgreSQL down: a queued query failed after {queued:.2f} s, a login after {login:.2f} s; "
              f"served again {served:.2f} s after PostgreSQL was back ({len(failures)} failed attempts: {set(failures)})")
        assert served <= retry + 1.5, served

