"""The bench lab: built, deployed and removed by the harness; commands on its hosts over SSH.

App-side programs run on an app host as the app user through `systemd-run --pipe` with the app's
EnvironmentFile (the same way the deploy runs `talentsphere` commands), so the database and Redis
passwords never appear on a command line. SQL as the PostgreSQL superuser runs with `sudo -u postgres psql`
on the db host (peer authentication, no password).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tsdeploy.context import build_context
from tsdeploy.topology import Topology
from tsdeploy.inventory import load as load_inventory
from tsdeploy.lab import Lab

from .settings import BENCH_HOSTS, BENCH_VARS

REPO = Path(__file__).resolve().parents[2]
TSDEPLOY = REPO / ".venv" / "bin" / "tsdeploy"
APP_ENV = "/etc/talentsphere/env"
#: The database owner role's URL, read after APP_ENV: the schema and data commands (seed, optimize-db) need it.
OWNER_ENV = "/etc/talentsphere/owner.env"
APP_PYTHON = "/opt/talentsphere/current/bin/python"
APP_CLI = "/opt/talentsphere/current/bin/talentsphere"


class RemoteError(RuntimeError):
    """A command on a lab host failed; the message holds its stderr."""


def as_app(*command: str, owner: bool = False) -> str:
    """The shell command running `command` as the app user with the app's environment file (and, with `owner`,
    the owner role's database URL: what the deploy's own schema commands run with)."""
    return shlex.join(["sudo", "systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                       "--uid=talentsphere", "--gid=talentsphere", f"--property=EnvironmentFile={APP_ENV}",
                       *([f"--property=EnvironmentFile={OWNER_ENV}"] if owner else []),
                       "--property=WorkingDirectory=/", "--property=PrivateTmp=yes", *command])


@dataclass
class BenchLab:
    """A split lab named `name` with its inventory in `inventory_dir`."""

    name: str
    inventory_dir: Path
    lab: Lab = field(init=False)

    def __post_init__(self) -> None:
        self.lab = Lab(self.name)

    def up(self, topology: str = "split") -> float:
        """Build (or reuse) the lab hosts and write the bench inventory variables; returns seconds."""
        started = time.monotonic()
        self.lab.up(topology, "bookworm", self.inventory_dir)
        self.set_vars({})
        return time.monotonic() - started

    def set_vars(self, extra: dict[str, Any]) -> None:
        """The bench's inventory variables plus `extra` (a configuration under comparison); takes effect on
        the next deploy."""
        bench_vars = self.inventory_dir / "group_vars" / "all" / "bench.yml"
        bench_vars.write_text("# Written by the benchmark harness (bench/tsbench/hosts.py).\n"
                              + yaml.safe_dump({**BENCH_VARS, **extra}))

    def deploy(self) -> tuple[float, str]:
        """Run `tsdeploy deploy`; returns (seconds, last stdout line).

        The configurations under comparison must take effect, so the bench's own lab allows the restarts a
        production deploy would only report as pending.
        """
        started = time.monotonic()
        process = subprocess.run([str(TSDEPLOY), "deploy", str(self.inventory_dir), "--allow-restart", "postgres,redis"],
                                 capture_output=True, text=True, check=False)
        seconds = time.monotonic() - started
        if process.returncode != 0:
            raise RemoteError(f"tsdeploy deploy failed:\n{process.stderr[-3000:]}")
        return seconds, process.stdout.strip().splitlines()[-1]

    def down(self) -> None:
        """Remove the lab and everything it wrote."""
        self.lab.down()

    @property
    def hosts(self) -> dict[str, str]:
        """Host name -> address."""
        return self.lab.hosts

    def hostvars(self, host: str) -> dict[str, Any]:
        """The inventory's variables for `host` (secrets stay in memory, never printed)."""
        return load_inventory(self.inventory_dir).hostvars[host]

    def context(self, host: str) -> dict[str, Any]:
        """The deploy's template context for `host` (role defaults merged in): what the deploy rendered."""
        return build_context(load_inventory(self.inventory_dir), host)

    def variables(self, host: str) -> dict[str, Any]:
        """`host`'s variables as the roles read them: their defaults < the inventory."""
        return Topology(load_inventory(self.inventory_dir)).vars_of(host)

    def ssh(self, host: str, command: str, stdin: str | None = None, timeout: float = 600) -> str:
        """Run `command` on `host` as the deploy user; stdout, or RemoteError with stderr."""
        process = subprocess.run(["ssh", "-F", str(self.lab.ssh_config), host, command], input=stdin,
                                 capture_output=True, text=True, timeout=timeout, check=False)
        if process.returncode != 0:
            raise RemoteError(f"{host}: {command[:200]} failed ({process.returncode}): {process.stderr[-2000:]}")
        return process.stdout

    def psql(self, sql: str, database: str = "talentsphere", timeout: float = 600) -> str:
        """Run `sql` (from stdin) as the PostgreSQL superuser on the db host; unaligned tuples-only output."""
        command = f"sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -At -d {shlex.quote(database)}"
        return self.ssh(BENCH_HOSTS["db"], command, stdin=sql, timeout=timeout)

    def app_python(self, program: str, args: dict[str, Any], host: str = BENCH_HOSTS["app"],
                   timeout: float = 900, owner: bool = False) -> Any:
        """Run a Python `program` with the app's venv and environment on an app host; its last stdout line
        is JSON and is returned decoded. `args` reach it as the global ARGS."""
        source = f"ARGS = {json.dumps(args)!r}\nimport json as _json\nARGS = _json.loads(ARGS)\n{program}"
        output = self.ssh(host, as_app(APP_PYTHON, "-", owner=owner), stdin=source, timeout=timeout)
        return json.loads(output.strip().splitlines()[-1])

    def talentsphere(self, *args: str, host: str = BENCH_HOSTS["app"], timeout: float = 1800) -> str:
        """Run the app's console script (`talentsphere seed ...`) on an app host, as the deploy does: with the
        database owner role (seed and optimize-db write the schema's sequences and indexes)."""
        return self.ssh(host, as_app(APP_CLI, *args, owner=True), timeout=timeout)

    def redis(self, running: bool) -> None:
        """Start or stop Redis on the cache host (stopped = every app lookup is served by PostgreSQL)."""
        self.ssh(BENCH_HOSTS["cache"], f"sudo systemctl {'start' if running else 'stop'} redis-server")

    def lb_url(self) -> str:
        """https://<lb address>"""
        return f"https://{self.hosts[BENCH_HOSTS['lb']]}"

    def ca_file(self) -> str:
        """The lab CA certificate (control-node path) that signs the lb's certificate."""
        return str(self.hostvars(BENCH_HOSTS["lb"])["tls_ca_cert_file"])
