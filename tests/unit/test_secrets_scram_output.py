"""The app role's SCRAM verifier never reaches pyinfra's output, at any verbosity.

pyinfra prints a fact's command with -vv and its output with -vvv. These tests run the postgres role's fact
command FOR REAL (its exact shell line, `runuser -u postgres -- psql ...`) against a throwaway PostgreSQL
cluster in /tmp holding the role with a known password, and check what pyinfra would print: neither the
stored verifier nor anything with the SCRAM prefix; and that the role's decision (`role_statements`) still
tells an unchanged password from a changed one. Skipped without root, the postgres account or PostgreSQL.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from roles.postgres import sql

from local_postgres import has_postgres_account

_FOUND = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
PG_BIN = _FOUND[-1].parent if _FOUND else pathlib.Path("/usr/lib/postgresql/15/bin")
PORT = 5483
USER = "talentsphere"
PASSWORD = "1f6e0c2b9d8a47f3b5e6c7d8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8"
LIMIT = 42

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not has_postgres_account() or not os.access(PG_BIN / "initdb", os.X_OK)
    or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"),
    reason="needs root, the postgres account and PostgreSQL (apt-get install postgresql)")


class Cluster:
    """A throwaway cluster on a Unix socket in its own temp dir, run by the postgres account."""

    def __init__(self, base: pathlib.Path) -> None:
        self.base, self.data, self.sock = base, base / "pg", base / "sock"

    def run(self, *argv: object) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], check=True, capture_output=True,
                              text=True, cwd=self.base, timeout=120)

    def admin(self, statement: str) -> None:
        self.run(PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p", PORT, "-d", "postgres",
                 "-c", statement)

    def fact_output(self, command: str) -> subprocess.CompletedProcess:
        """Run a fact's command line as pyinfra would on the host (sh -c), this cluster as the default server."""
        env = {"PATH": f"{PG_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "PGHOST": str(self.sock), "PGPORT": str(PORT)}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=True, timeout=60)

    def role_row(self) -> list[str]:
        """The login_role fact's data for USER: its command run for real, its output processed by the fact."""
        output = self.fact_output(sql.PsqlQuery().command(database="postgres", query=sql.role_query(USER)))
        return sql.PsqlQuery().process(output.stdout.splitlines())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    base = pathlib.Path(tempfile.mkdtemp(prefix="tsd-scram-", dir="/tmp"))  # short: socket paths <= 107 bytes
    cluster = Cluster(base)
    try:
        shutil.chown(base, "postgres", "postgres")
        (base / "sock").mkdir(mode=0o700)
        shutil.chown(base / "sock", "postgres", "postgres")
        cluster.run(PG_BIN / "initdb", "-D", cluster.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync", "--no-instructions")
        with (cluster.data / "postgresql.conf").open("a") as handle:
            handle.write(f"listen_addresses = ''\nport = {PORT}\nunix_socket_directories = '{cluster.sock}'\n")
        cluster.run(PG_BIN / "pg_ctl", "-D", cluster.data, "-l", base / "pg.log", "-w", "start")
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(cluster.data),
                            "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stored_verifier(cluster: Cluster) -> Iterator[str]:
    """USER exists as login_role leaves it, with PASSWORD's verifier; the verifier as PostgreSQL stores it."""
    for statement in sql.role_statements(USER, LIMIT, None, PASSWORD):
        cluster.admin(statement)
    stored = cluster.fact_output(f"psql -X -At -U postgres -d postgres -c "
                                 f"\"SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'\"").stdout.strip()
    assert stored.startswith("SCRAM-SHA-256$") and stored.split("$")[1].count(":") == 1
    yield stored
    cluster.admin(f"DROP ROLE {USER}")


def test_the_facts_command_and_output_never_hold_the_verifier(cluster: Cluster, stored_verifier: str) -> None:
    command = sql.PsqlQuery().command(database="postgres", query=sql.role_query(USER))  # printed with -vv
    output = cluster.fact_output(command)  # printed with -vvv
    printed = command + output.stdout + output.stderr
    _, _, stored_key_and_server_key = stored_verifier.rpartition("$")
    for part in (stored_verifier, "SCRAM-SHA-256$", *stored_key_and_server_key.split(":"), PASSWORD):
        assert part not in printed
    assert len(cluster.role_row()) == 1


def test_an_unchanged_password_and_attributes_need_no_statement(cluster: Cluster, stored_verifier: str) -> None:
    row = cluster.role_row()[0]
    assert sql.role_statements(USER, LIMIT, row, PASSWORD) == []


def test_a_changed_password_is_set_again_only_as_a_new_verifier(cluster: Cluster, stored_verifier: str) -> None:
    new_password = PASSWORD[::-1]
    statements = sql.role_statements(USER, LIMIT, cluster.role_row()[0], new_password)
    assert len(statements) == 1 and statements[0].startswith(f"ALTER ROLE {USER} PASSWORD 'SCRAM-SHA-256$")
    assert new_password not in statements[0]
    cluster.admin(statements[0])
    assert sql.role_statements(USER, LIMIT, cluster.role_row()[0], new_password) == []


def test_changed_attributes_are_fixed_without_touching_the_password(cluster: Cluster, stored_verifier: str) -> None:
    cluster.admin(f"ALTER ROLE {USER} CREATEDB CONNECTION LIMIT 3")
    assert sql.role_statements(USER, LIMIT, cluster.role_row()[0], PASSWORD) == [
        f"ALTER ROLE {USER} {sql.ROLE_ATTRIBUTES} {LIMIT};\n"]


def test_an_md5_or_missing_password_never_matches() -> None:
    assert not sql.password_matches("", "", PASSWORD)
    assert not sql.password_matches("4096:not base64!", "00", PASSWORD)
