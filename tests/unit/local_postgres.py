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
