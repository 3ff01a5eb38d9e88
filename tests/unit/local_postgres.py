"""Whether this machine can run the tests that use its own PostgreSQL and pgBackRest for real (as root).

Those tests build throwaway clusters and repositories in /tmp as the `postgres` account that Debian's
PostgreSQL packages create (`make system-deps` installs them, CI included).
"""

from __future__ import annotations

import pathlib
import pwd


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
    import shutil

    bin_dir = newest_postgresql_bin()
    return (os.geteuid() != 0 or not has_postgres_account() or not os.access(bin_dir / "initdb", os.X_OK)
            or not os.access(bin_dir / "pg_amcheck", os.X_OK) or not os.access(PGBACKREST, os.X_OK)
            or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"))


#: The skip reason that goes with it.
PGBACKREST_CLUSTERS_NEED = ("needs root, the postgres account, PostgreSQL and pgBackRest "
                            "(apt-get install postgresql pgbackrest)")
