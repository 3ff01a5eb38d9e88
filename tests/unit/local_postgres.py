"""Whether this machine can run the tests that use its own PostgreSQL and pgBackRest for real (as root).

Those tests build throwaway clusters and repositories in /tmp as the `postgres` account that Debian's
PostgreSQL packages create (`make system-deps` installs them, CI included).
"""

from __future__ import annotations

import contextlib
import pathlib
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator


def has_postgres_account() -> bool:
    """Whether the `postgres` system account exists."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


def newest_postgresql_bin() -> pathlib.Path:
    """The binaries of the newest PostgreSQL installed (15 on bookworm, 17 on trixie)."""
    found = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return found[-1].parent if found else pathlib.Path("/usr/lib/postgresql/15/bin")


#: Debian's pgBackRest, as the backup role installs it.
PGBACKREST = pathlib.Path("/usr/bin/pgbackrest")


def cannot_run_pgbackrest_clusters() -> bool:
    """Whether this machine lacks what a throwaway cluster with a pgBackRest repository needs: root (the cluster
    runs as postgres), the postgres account, PostgreSQL with pg_amcheck, pgBackRest and runuser."""
    import os

    return (cannot_run_clusters() or not os.access(newest_postgresql_bin() / "pg_amcheck", os.X_OK)
            or not os.access(PGBACKREST, os.X_OK))


#: The skip reason that goes with it.
PGBACKREST_CLUSTERS_NEED = ("needs root, the postgres account, PostgreSQL and pgBackRest "
                            "(apt-get install postgresql pgbackrest)")


class Cluster:
    """A throwaway cluster on a Unix socket in its own temp dir, run by the postgres account."""

    def __init__(self, base: pathlib.Path, port: int) -> None:
        self.base, self.data, self.sock, self.port = base, base / "pg", base / "sock", port
        self.bin = newest_postgresql_bin()

    def run(self, *argv: object, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, argv)], check=check, capture_output=True,
                              text=True, cwd=self.base, timeout=120)

    def psql(self, statement: str, database: str = "postgres", check: bool = True) -> subprocess.CompletedProcess:
        """Run `statement` as the superuser (one transaction when it holds several statements)."""
        return self.run(self.bin / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                        "-p", self.port, "-d", database, "-c", statement, check=check)

    def admin(self, statement: str) -> None:
        self.psql(statement)

    def fact_output(self, command: str) -> subprocess.CompletedProcess:
        """Run a fact's command line as pyinfra would on the host (sh -c), this cluster as the default server."""
        env = {"PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin", "PGHOST": str(self.sock), "PGPORT": str(self.port)}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=True, timeout=60)


@contextlib.contextmanager
def throwaway_cluster(prefix: str, port: int) -> Iterator[Cluster]:
    """initdb, start, yield, stop and remove a cluster in /tmp (short paths: a socket path is <= 107 bytes)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    cluster = Cluster(base, port)
    try:
        shutil.chown(base, "postgres", "postgres")
        cluster.sock.mkdir(mode=0o700)
        shutil.chown(cluster.sock, "postgres", "postgres")
        cluster.run(cluster.bin / "initdb", "-D", cluster.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--locale=C", "--no-sync", "--no-instructions")
        with (cluster.data / "postgresql.conf").open("a") as handle:
            handle.write(f"listen_addresses = ''\nport = {port}\nunix_socket_directories = '{cluster.sock}'\n")
        cluster.run(cluster.bin / "pg_ctl", "-D", cluster.data, "-l", base / "pg.log", "-w", "start")
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(cluster.bin / "pg_ctl"), "-D", str(cluster.data),
                            "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def cannot_run_clusters() -> bool:
    """Whether this machine lacks root, the postgres account, PostgreSQL or runuser."""
    import os

    return (os.geteuid() != 0 or not has_postgres_account()
            or not os.access(newest_postgresql_bin() / "initdb", os.X_OK)
            or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"))


CLUSTERS_NEED = "needs root, the postgres account and PostgreSQL (apt-get install postgresql)"
