"""The Lab: build, reuse and remove a set of systemd-nspawn hosts plus the inventory that describes them."""

from __future__ import annotations

import ipaddress
import shutil
import time
from pathlib import Path

from roles.registry import Group
from tsdeploy.lab import host as hostlib
from tsdeploy.lab import image, inventory, network, pki, sysctl
from tsdeploy.lab.secrets import ensure_secrets, ensure_vault_password
from tsdeploy.lab.state import GLOBAL_LOCK, SYSCTL_SAVED, STATE_ROOT, HostState, LabState, check_name, lab_names
from tsdeploy.lab.system import LabError, ensure_packages, file_lock, progress, require_root, run
from tsdeploy.lab.topology import hosts_of

BOOT_TIMEOUT = 180.0
DEFAULT_NAME = network.DEFAULT_LAB


def default_inventory_dir(name: str) -> Path:
    """inventories/lab/ for the default lab, inventories/lab-<name>/ for the others (both git-ignored)."""
    return Path.cwd() / "inventories" / ("lab" if name == DEFAULT_NAME else f"lab-{name}")


class Lab:
    """A named lab on this machine; its state lives in /var/lib/tsdeploy/labs/<name>/."""

    def __init__(self, name: str = DEFAULT_NAME) -> None:
        self.name = check_name(name)
        self.state_dir = LabState.directory(name)

    # ---- what the lab looks like -------------------------------------------------------------------------

    @property
    def state(self) -> LabState | None:
        return LabState.load(self.name)

    @property
    def hosts(self) -> dict[str, str]:
        """Host name -> private address (empty when the lab is not up)."""
        state = self.state
        return {name: h.address for name, h in state.hosts.items()} if state else {}

    @property
    def inventory_dir(self) -> Path | None:
        state = self.state
        return Path(state.inventory_dir) if state and state.inventory_dir else None

    @property
    def ssh_config(self) -> Path:
        """ssh_config with User, IdentityFile and the lab's known_hosts, for ssh, testinfra and pyinfra."""
        return self.state_dir / "ssh_config"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def status(self) -> list[tuple[str, str, bool]]:
        """(host, address, running) for every host of the lab."""
        state = self.state
        if state is None:
            return []
        return [(n, h.address, hostlib.is_running(h.pid, h.machine)) for n, h in state.hosts.items()]

    def url(self) -> str:
        """The HTTPS URL of the lab's load balancer."""
        state = self.state
        if state is None:
            raise LabError(f"lab {self.name!r} is not up: run `tsdeploy lab up --name {self.name}`")
        lb = [h.address for h in state.hosts.values() if Group.LB in h.groups]
        return f"https://{lb[0]}/"

    # ---- up ---------------------------------------------------------------------------------------------------

    def up(self, topology: str = "single", release: str = "bookworm", inventory_dir: Path | None = None) -> Lab:
        """Build (or reuse) every host, wait until each answers over SSH, and write the inventory."""
        require_root()
        hosts_of(topology)
        if release not in image.RELEASES:
            raise LabError(f"release {release!r} is not supported: use one of {', '.join(image.RELEASES)}")
        started = time.monotonic()
        ensure_packages()
        state = self._claim(topology, release, Path(inventory_dir or default_inventory_dir(self.name)).resolve())
        base = image.ensure_image(release)
        subnet = ipaddress.IPv4Network(state.subnet)
        with file_lock(GLOBAL_LOCK):
            progress(f"network: bridge {state.bridge} {network.gateway(subnet)}/24, nft table {state.nft_table}")
            network.ensure_bridge(state.bridge, subnet)
            network.ensure_nat(state.nft_table, subnet, state.bridge)
            sysctl.apply(SYSCTL_SAVED)
        self._ensure_ssh_key()
        host_keys = self._start_hosts(state, base, subnet)
        self._write_ssh_files(state, host_keys)
        self._wait_until_ready(state)
        self._write_inventory(state)
        progress(f"lab {self.name} is up ({topology}, {release}) in {time.monotonic() - started:.0f}s; "
                 f"inventory {state.inventory_dir}")
        return self

    def _claim(self, topology: str, release: str, inventory_dir: Path) -> LabState:
        """Load the lab's state, or allocate a subnet and record a new lab (under the machine-wide lock)."""
        with file_lock(GLOBAL_LOCK):
            state = LabState.load(self.name)
            if state is not None:
                if (state.topology, state.release) != (topology, release):
                    raise LabError(
                        f"lab {self.name!r} is already up as {state.topology}/{state.release}, not "
                        f"{topology}/{release}: run `tsdeploy lab down --name {self.name}` first or pick another --name"
                    )
                if state.inventory_dir != str(inventory_dir):
                    if state.inventory_dir:
                        inventory.remove_inventory(Path(state.inventory_dir))
                    state.inventory_dir = str(inventory_dir)
                    state.save()
                progress(f"lab {self.name} exists: reusing its running hosts")
                return state
            used = {s.index for s in (LabState.load(n) for n in lab_names()) if s is not None}
            index = network.allocate_index(self.name, used)
            subnet = network.subnet_for(index)
            if clash := network.addresses_in_use(subnet):
                raise LabError(f"subnet {subnet} is already used by interface(s) {', '.join(clash)} on this machine: "
                               "remove them or run `tsdeploy lab down --all`")
            hosts = {
                name: HostState(
                    name=name, address=str(network.host_address(subnet, position)),
                    machine=f"ts{index}-{name}", groups=list(groups),
                )
                for position, (name, groups) in enumerate(hosts_of(topology))
            }
            state = LabState(
                name=self.name, index=index, subnet=str(subnet), bridge=network.bridge_name(index),
                nft_table=network.nft_table(index), topology=topology, release=release,
                inventory_dir=str(inventory_dir), hosts=hosts,
            )
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.state_dir.chmod(0o700)
            state.save()
            progress(f"lab {self.name}: {topology} topology, {release}, subnet {subnet}")
            return state

    def _ensure_ssh_key(self) -> None:
        if not self.ssh_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"tsdeploy-lab-{self.name}",
                 "-f", self.ssh_key])
        self.ssh_key.chmod(0o600)

    def _start_hosts(self, state: LabState, base: Path, subnet: ipaddress.IPv4Network) -> dict[str, str]:
        """Boot every host that is not running; return host -> SSH host public key."""
        authorized = Path(f"{self.ssh_key}.pub").read_text()
        peers = {name: h.address for name, h in state.hosts.items()}
        keys = {}
        for name, h in state.hosts.items():
            host_dir = self.state_dir / "hosts" / name
            if hostlib.is_running(h.pid, h.machine):
                keys[name] = hostlib.host_public_key(hostlib.paths(host_dir)["root"])
                continue
            progress(f"{name}: booting {h.address} ({h.machine})")
            hostlib.stop(h)  # a host orphaned by a killed nspawn would hold the address and veth name
            hostlib.remove_veth(h.machine)
            root = hostlib.mount_overlay(base, host_dir)
            keys[name] = hostlib.personalize(
                root, hostname=name, address=h.address, prefixlen=subnet.prefixlen,
                gateway=str(network.gateway(subnet)), peers=peers, authorized_key=authorized,
            )
            h.pid = hostlib.boot(root, machine=h.machine, hostname=name, bridge=state.bridge,
                                 log=hostlib.paths(host_dir)["log"])
            h.init_pid, h.init_started = hostlib.container_init(h.pid)
            state.save()
        return keys

    def _write_ssh_files(self, state: LabState, host_keys: dict[str, str]) -> None:
        self.known_hosts.write_text(
            "".join(f"{name},{state.hosts[name].address} {key}\n" for name, key in host_keys.items())
        )
        blocks = [
            f"Host {name} {h.address}\n"
            f"    HostName {h.address}\n"
            f"    User {image.DEPLOY_USER}\n"
            f"    IdentityFile {self.ssh_key}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {self.known_hosts}\n"
            "    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 5\n"
            "    LogLevel ERROR\n"
            for name, h in state.hosts.items()
        ]
        self.ssh_config.write_text("\n".join(blocks))

    def ssh(self, host: str, command: str, timeout: float = 60) -> str:
        """Run `command` on `host` as the deploy user and return its stdout (raises when it fails)."""
        return run(["ssh", "-F", self.ssh_config, host, command], timeout=timeout).stdout

    def _wait_until_ready(self, state: LabState) -> None:
        """Wait until every host's sshd answers and systemd reports running or degraded."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        pending = dict(state.hosts)
        while pending:
            for name, h in list(pending.items()):
                if not hostlib.is_running(h.pid, h.machine):
                    log = hostlib.paths(self.state_dir / "hosts" / name)["log"]
                    raise LabError(f"{name}: systemd-nspawn stopped during boot:\n{hostlib.log_tail(log)}")
                result = run(["ssh", "-F", self.ssh_config, name, "systemctl is-system-running --wait"],
                             check=False, timeout=BOOT_TIMEOUT)
                answer = result.stdout.strip()
                if answer in ("running", "degraded"):
                    progress(f"{name}: up, systemd {answer}")
                    del pending[name]
            if pending and time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {name}:\n{hostlib.log_tail(hostlib.paths(self.state_dir / 'hosts' / name)['log'])}"
                    for name in pending
                )
                raise LabError(f"hosts {', '.join(pending)} did not answer over SSH within {BOOT_TIMEOUT:.0f}s:\n{logs}")
            if pending:
                time.sleep(0.5)

    def _write_inventory(self, state: LabState) -> None:
        assert state.inventory_dir is not None
        certs = self.state_dir / "pki"
        ca = pki.ensure_ca(certs, self.name)
        inv_hosts = []
        for name, h in state.hosts.items():
            cert, key = pki.ensure_host_cert(certs, ca, name, h.address)
            inv_hosts.append(inventory.InventoryHost(name, h.address, tuple(h.groups), str(cert), str(key)))
        files = inventory.LabFiles(
            ssh_key=str(self.ssh_key), known_hosts=str(self.known_hosts), ca_cert=str(ca[0]),
            vault_password=str(ensure_vault_password(self.state_dir)),
        )
        inventory.write_inventory(
            Path(state.inventory_dir), lab_name=self.name, hosts=inv_hosts, files=files,
            release=state.release, subnet=state.subnet, lb_address=self.url().split("/")[2],
            secrets=ensure_secrets(self.state_dir),
        )

    # ---- rebuild ----------------------------------------------------------------------------------------------

    def rebuild(self, host: str) -> Lab:
        """Lose `host` entirely (a power cut, then its disk deleted: every file it wrote) and boot it fresh.

        What losing a machine looks like: every process ends at once (nothing is flushed or archived on the
        way down); the new host has the same name and address, a new SSH host key and nothing the deploy ever
        put there. The inventory is rewritten (known_hosts gets the new key).
        """
        require_root()
        state = self.state
        if state is None or host not in state.hosts:
            known = ", ".join(state.hosts) if state else "none (lab is down)"
            raise LabError(f"host {host!r} is not in lab {self.name!r}: hosts are {known}")
        h = state.hosts[host]
        host_dir = self.state_dir / "hosts" / host
        progress(f"{host}: power cut, then deleting its disk")
        hostlib.power_cut(h)
        hostlib.remove_veth(h.machine)
        hostlib.unmount_overlay(host_dir)
        shutil.rmtree(host_dir)
        h.pid = None
        state.save()
        return self.up(state.topology, state.release, Path(state.inventory_dir) if state.inventory_dir else None)

    # ---- down -------------------------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop every host by PID, unmount overlays, remove bridge, nft table, inventory and state."""
        require_root()
        started = time.monotonic()
        state = self.state
        if state is None:
            progress(f"lab {self.name} is not up: nothing to remove")
            if self.state_dir.exists():
                shutil.rmtree(self.state_dir)
            return
        for name, h in state.hosts.items():
            progress(f"{name}: stopping")
            hostlib.stop(h)
            hostlib.remove_veth(h.machine)
            hostlib.unmount_overlay(self.state_dir / "hosts" / name)
        if state.inventory_dir:
            inventory.remove_inventory(Path(state.inventory_dir))
        with file_lock(GLOBAL_LOCK):
            network.delete_nat(state.nft_table)
            network.delete_bridge(state.bridge)
            shutil.rmtree(self.state_dir)
            if not lab_names():
                sysctl.restore(SYSCTL_SAVED)
        progress(f"lab {self.name} removed in {time.monotonic() - started:.1f}s")


def all_labs() -> list[Lab]:
    """Every lab with state on this machine."""
    return [Lab(name) for name in lab_names(STATE_ROOT)]
