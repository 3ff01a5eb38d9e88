"""How the verify suite reaches a host and asks it questions, read-only, over SSH.

`Target` wraps one inventory host: its testinfra host (ssh backend with a generated ssh_config), the
deploy's context for it (what the host should look like), and small query helpers (psql as JSON, TCP
probes from the host, commands fed a secret on stdin so it never appears in a command line).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
import subprocess
from typing import Any

import pytest
import testinfra

from tsdeploy.inventory import Inventory
from tsdeploy.pyinfra_inventory import host_data
from tsdeploy.topology import Topology
from tsdeploy.verify import VerifyInventory

SSH_TIMEOUT = 60


def write_ssh_config(inventory: Inventory, directory: pathlib.Path) -> pathlib.Path:
    """Write an ssh_config with one block per host: address, user, key, known hosts, shared connections.

    Connection data comes from the same mapping of ansible_* variables that the deploy uses
    (`tsdeploy.pyinfra_inventory.host_data`), so verify reaches a host exactly as the deploy does.
    """
    blocks = []
    for name in inventory.hosts:
        data = host_data(inventory, name)
        # The inventory's pinned known_hosts file, checked strictly (conftest refuses a host without a pinned key).
        known_hosts = (f"    UserKnownHostsFile {data['ssh_known_hosts_file']}\n"
                       f"    StrictHostKeyChecking {data['ssh_strict_host_key_checking']}\n")
        key = data.get("ssh_key")
        blocks.append(
            f"Host {name}\n"
            f"    HostName {data['ssh_hostname']}\n"
            f"    Port {data.get('ssh_port', 22)}\n"
            f"    User {data.get('ssh_user', 'root')}\n"
            + (f"    IdentityFile {key}\n    IdentitiesOnly yes\n" if key else "")
            + known_hosts
            + "    BatchMode yes\n    ConnectTimeout 10\n    LogLevel ERROR\n"
            f"    ControlMaster auto\n    ControlPath {directory}/cm-%C\n    ControlPersist 120\n"
        )
    path = directory / "ssh_config"
    path.write_text("\n".join(blocks))
    path.chmod(0o600)
    return path


@dataclasses.dataclass
class Target:
    """One host under verification."""

    name: str
    loaded: VerifyInventory
    ssh_config: pathlib.Path
    host: Any  # testinfra.host.Host
    ctx: dict[str, Any]
    topology: Topology

    @classmethod
    def connect(cls, name: str, loaded: VerifyInventory, ssh_config: pathlib.Path, topology: Topology) -> Target:
        """The host `name`; `topology` derives the deploy's contexts once for the session (a pure function)."""
        host = testinfra.get_host(f"ssh://{name}", ssh_config=str(ssh_config))
        return cls(name, loaded, ssh_config, host, topology.host_context(name), topology)

    def service(self, role: str) -> dict[str, Any]:
        """Another role's context where that role runs (e.g. PostgreSQL's port, checked from an lb host)."""
        return dict(self.topology.service(role))

    def __str__(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        return self.ctx["host"]["private_address"]

    @property
    def groups(self) -> list[str]:
        return self.ctx["host"]["groups"]

    def require_secrets(self, what: str) -> None:
        """Without the vault the check stops here and is reported as not run, naming what it needed."""
        if not self.loaded.has_secrets:
            pytest.skip(f"needs {what} (no vault password available)")

    def secret(self, variable: str) -> str:
        """The secret's value; without the vault the check stops here and is reported as not run."""
        self.require_secrets(f"secret {variable}")
        return self.loaded.secrets[variable]

    def sudo(self, command: str, *args: str) -> Any:
        """Run a read-only command as root (the deploy user has passwordless sudo)."""
        return self.host.run(f"sudo -n {command}", *args)

    def sudo_check(self, command: str, *args: str) -> str:
        """Run as root and return stdout; a non-zero exit fails the check with the command's stderr."""
        result = self.sudo(command, *args)
        assert result.rc == 0, f"{self.name}: `{result.command}` exited {result.rc}: {result.stderr.strip()}"
        return result.stdout

    def psql_json(self, sql: str, database: str = "postgres") -> Any:
        """Run a query as the postgres superuser over the local socket (peer auth); return its rows as JSON."""
        wrapped = f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) AS q"
        out = self.sudo_check("-u postgres psql -X -A -t -q -v ON_ERROR_STOP=1 -d %s -c %s", database, wrapped)
        return json.loads(out)

    def show(self, name: str) -> str:
        """The running value of a PostgreSQL setting (SHOW), not the file's."""
        return self.sudo_check("-u postgres psql -X -A -t -q -c %s", f"SHOW {name}").strip()

    def service_problem(self, unit: str) -> str | None:
        """Why systemd `unit` is not running and enabled (started at boot) on this host; None when it is."""
        service = self.host.service(unit)
        if service.is_running and service.is_enabled:
            return None
        return f"{self}: {unit} running={service.is_running} enabled={service.is_enabled}"

    def tls_problem(self, address: str, port: int, ca_file: str, starttls: str = "") -> str | None:
        """Why a TLS handshake from this host to address:port does not verify with `ca_file` for that address
        (chain and subjectAltName IP, as the services' clients check them); None when it does. `starttls`:
        openssl's protocol name for a server that starts TLS inside its own protocol (postgres)."""
        start = f"-starttls {starttls} " if starttls else ""
        result = self.host.run(f"openssl s_client {start}-connect %s:%s -CAfile %s -verify_return_error "
                               "-verify_ip %s -brief </dev/null", address, str(port), ca_file, address)
        if result.rc == 0 and "Verification: OK" in result.stderr:
            return None
        return f"{self}: TLS on {address}:{port} did not verify with {ca_file}: {result.stderr.strip()[-300:]}"

    def tcp_open(self, address: str, port: int, timeout: int = 3) -> bool:
        """Whether a TCP connection from this host to address:port succeeds (bash /dev/tcp, no data sent)."""
        result = self.host.run("timeout %s bash -c %s", str(timeout), f"exec 3<>/dev/tcp/{address}/{port}")
        return result.rc == 0

    def run_with_stdin(self, command: str, stdin: str) -> subprocess.CompletedProcess[str]:
        """Run `command` on the host with `stdin` fed to it: secrets travel this way, never in argv."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), self.name, command], input=stdin, text=True,
                              capture_output=True, timeout=SSH_TIMEOUT, check=False)

    def redis_cli(self, *args: str, user: str | None = None, password: str | None = None) -> str:
        """redis-cli against this cache host's private address over TLS (verified with the inventory's CA), as
        the app reaches it; its output (it exits 0 on NOAUTH/NOPERM)."""
        redis = self.ctx["redis"]
        base = (f"redis-cli --no-auth-warning --tls --cacert {shlex.quote(redis['tls_ca'])} "
                f"-h {shlex.quote(redis['address'])} -p {int(redis['port'])}")
        words = " ".join(shlex.quote(arg) for arg in args)
        if user is None:
            result = self.host.run(f"{base} {words}")
            return (result.stdout + result.stderr).strip()
        # The password is read from stdin into REDISCLI_AUTH, so no process ever has it in its argv.
        script = f"IFS= read -r REDISCLI_AUTH; export REDISCLI_AUTH; exec {base} --user {shlex.quote(user)} {words}"
        result = self.run_with_stdin(f"sh -c {shlex.quote(script)}", f"{password}\n")
        return (result.stdout + result.stderr).strip()
