"""Debian packages, with an apt index refresh only when a wanted package is missing.

pyinfra's `apt.update(cache_time=)` and `apt.packages(update=True, cache_time=)` refresh the index whenever
the stamp is older than `cache_time`, even when every package is installed, so a re-deploy an hour (or a day)
after the last one reported changes on every host without changing anything it runs. The deploy installs and
never upgrades (security updates are unattended-upgrades' job), so the index only matters for an install.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

#: An index younger than this is used as it is for an install (pyinfra touches the stamp after a refresh).
INDEX_MAX_AGE_SECONDS = 3600


@operation()
def install(packages: list[str]):
    """Install Debian packages that are missing, refreshing the apt index first if it is older than an hour.

    + packages: package names (no versions: Debian's release decides them)

    Updates: nothing when every package is installed (no index refresh either).

    Example: install(name="Install Redis from Debian", packages=["redis-server"])
    """
    installed = host.get_fact(DebPackages)
    missing = [name for name in packages if name not in installed]
    if not missing:
        host.noop(f"{', '.join(packages)} already installed")
        return
    yield from apt.update._inner(cache_time=INDEX_MAX_AGE_SECONDS)
    yield from apt.packages._inner(packages=missing)
