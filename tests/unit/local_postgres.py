"""Whether this machine can run the tests that use its own PostgreSQL and pgBackRest for real (as root).

Those tests build throwaway clusters and repositories in /tmp as the `postgres` account that Debian's
PostgreSQL packages create (`make system-deps` installs them, CI included).
"""

from __future__ import annotations

import pwd


def has_postgres_account() -> bool:
    """Whether the `postgres` system account exists."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True
