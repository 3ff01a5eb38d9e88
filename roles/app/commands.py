"""Run the app's own commands on a host as the app user, with its EnvironmentFile.

`systemd-run --wait --pipe` starts a transient unit: systemd reads the EnvironmentFile itself, so the
database password and the secret key never appear on a command line, in `ps` or in pyinfra's output.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase

#: A short Python program that counts the seeded jobs (prints "unknown" when the query fails).
_COUNT_JOBS = (
    "import os, sqlalchemy as sa\n"
    "engine = sa.create_engine(os.environ['DATABASE_URL'])\n"
    "with engine.connect() as connection:\n"
    "    print(connection.execute(sa.text('SELECT count(*) FROM jobs')).scalar())\n"
)


def as_app(app: dict[str, Any], program: str, *args: str, env: dict[str, str] | None = None,
           owner: bool = False) -> str:
    """The shell command that runs `program` (a path) with `args` as the app user in a transient unit.

    `env` adds non-secret variables on the command line (secrets come only from the EnvironmentFile).
    `owner` adds the owner role's env file after the app's (its DATABASE_URL wins): for the deploy's schema
    commands (migrate, optimize-db, seed) only.

    >>> as_app({"user": "talentsphere", "env_file": "/etc/talentsphere/env"}, "/x/bin/talentsphere", "migrate")
    'systemd-run --quiet --wait --pipe --collect --uid=talentsphere --gid=talentsphere --property=EnvironmentFile=/etc/talentsphere/env --property=WorkingDirectory=/ --property=PrivateTmp=yes --property=NoNewPrivileges=yes /x/bin/talentsphere migrate'
    """
    return shlex.join([
        "systemd-run", "--quiet", "--wait", "--pipe", "--collect",
        f"--uid={app['user']}", f"--gid={app['user']}",
        f"--property=EnvironmentFile={app['env_file']}",
        *([f"--property=EnvironmentFile={app['owner_env_file']}"] if owner else []),
        "--property=WorkingDirectory=/",
        "--property=PrivateTmp=yes", "--property=NoNewPrivileges=yes",
        *(f"--setenv={name}={value}" for name, value in (env or {}).items()),
        program, *args,
    ])


class SeededJobs(FactBase):
    """How many rows the app's jobs table holds, read through a release.

    Returns an int, ``None`` when no release is installed yet (a first deploy), or ``"unknown"`` when
    the query failed (database unreachable, schema missing).
    """

    def command(self, user: str, env_file: str, release_dirs: list[str]) -> str:
        # The first release directory that is installed: the one being deployed, else the live one.
        tries = " ".join(shlex.quote(f"{path}/bin/python") for path in release_dirs)
        query = as_app({"user": user, "env_file": env_file}, "$python", "-c", _COUNT_JOBS).replace("'$python'", '"$python"')
        return (f"for python in {tries}; do if [ -x \"$python\" ]; then {query} 2>/dev/null || echo unknown; "
                f"exit 0; fi; done; echo none")

    def process(self, output: list[str]) -> int | str | None:
        value = output[-1].strip() if output else "unknown"
        if value == "none":
            return None
        return int(value) if value.isdigit() else "unknown"


def seeded_jobs(app: dict[str, Any], release: str) -> int | str | None:
    """The SeededJobs fact for the current host, read through `release` if installed, else the live release."""
    return host.get_fact(SeededJobs, user=app["user"], env_file=app["env_file"],
                         release_dirs=[release, app["current_dir"]])
