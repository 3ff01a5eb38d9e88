"""One lab host: an overlay over the base image, its own identity, booted by systemd-nspawn."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tsdeploy.lab.image import DEPLOY_USER
from tsdeploy.lab.state import HostState
from tsdeploy.lab.system import LabError, run

STOP_TIMEOUT = 20.0
NETWORK_FILE = "etc/systemd/network/10-host0.network"  # sorts before the image's 80-container-host0.network


def paths(host_dir: Path) -> dict[str, Path]:
    """The overlay's upper, work and merged directories plus the boot log of one host."""
    return {name: host_dir / name for name in ("upper", "work", "root")} | {"log": host_dir / "nspawn.log"}


def is_mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def mount_overlay(base: Path, host_dir: Path) -> Path:
    """Mount the host's overlay (idempotent) and return its root."""
    p = paths(host_dir)
    for key in ("upper", "work", "root"):
        p[key].mkdir(parents=True, exist_ok=True)
    if not is_mounted(p["root"]):
        options = f"lowerdir={base},upperdir={p['upper']},workdir={p['work']}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, p["root"]])
    return p["root"]


def unmount_overlay(host_dir: Path) -> None:
    root = paths(host_dir)["root"]
    if is_mounted(root):
        run(["umount", root])


def _passwd_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LabError(f"user {user!r} is missing from the base image: rebuild it with `tsdeploy lab down --purge`")


def network_unit(address: str, prefixlen: int, gateway: str) -> str:
    """systemd-networkd file giving host0 its static address and the lab gateway."""
    return f"[Match]\nName=host0\n\n[Network]\nAddress={address}/{prefixlen}\nGateway={gateway}\n"


def hosts_file(hostname: str, peers: dict[str, str]) -> str:
    lines = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{hostname}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in peers.items()]
    return "\n".join(lines) + "\n"


def personalize(
    root: Path, *, hostname: str, address: str, prefixlen: int, gateway: str, peers: dict[str, str],
    authorized_key: str,
) -> str:
    """Give the host its identity (once) and network; return its SSH host public key line."""
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(secrets.token_hex(16) + "\n")
    host_key = root / "etc/ssh/ssh_host_ed25519_key"
    if not host_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}", "-f", host_key])
    (root / "etc/hostname").write_text(f"{hostname}\n")
    (root / "etc/hosts").write_text(hosts_file(hostname, peers))
    (root / NETWORK_FILE).write_text(network_unit(address, prefixlen, gateway))
    uid, gid = _passwd_ids(root, DEPLOY_USER)
    ssh_dir = root / "home" / DEPLOY_USER / ".ssh"
    keys = ssh_dir / "authorized_keys"
    keys.write_text(authorized_key.strip() + "\n")
    os.chown(keys, uid, gid)
    keys.chmod(0o600)
    return host_public_key(root)


def host_public_key(root: Path) -> str:
    """The host's SSH host key as `type base64` for a known_hosts line."""
    key_type, key_data = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
    return f"{key_type} {key_data}"


def is_running(pid: int | None, machine: str) -> bool:
    """True when `pid` is still the systemd-nspawn of `machine` (guards against a reused PID)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"systemd-nspawn") and f"--machine={machine}".encode() in cmdline


def find_pids(machine: str) -> list[int]:
    """Every systemd-nspawn process running `machine`, also ones whose PID was never recorded."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_running(int(entry.name), machine):
            pids.append(int(entry.name))
    return pids


def boot(root: Path, *, machine: str, hostname: str, bridge: str, log: Path) -> int:
    """Start systemd-nspawn detached in its own session and return its PID."""
    cmd = [
        "systemd-nspawn", "--quiet", "-D", str(root), "--boot",
        # The machine has no systemd of its own: without these nspawn fails with "Failed to open system bus".
        "--register=no", "--keep-unit",
        f"--network-bridge={bridge}", f"--machine={machine}", f"--hostname={hostname}",
        "--resolv-conf=copy-host", "--console=read-only",
    ]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    time.sleep(0.5)
    if process.poll() is not None:
        raise LabError(f"systemd-nspawn for {hostname} exited at once ({process.returncode}):\n{log_tail(log)}")
    return process.pid


def log_tail(log: Path, lines: int = 8) -> str:
    """The end of a host's boot log, for error messages (the log goes away with `lab down`)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def veth_name(machine: str) -> str:
    """The host side of the host's veth pair, as systemd-nspawn names it for --network-bridge."""
    return f"vb-{machine}"


def remove_veth(machine: str, timeout: float = 10.0) -> None:
    """Make sure the host's veth is gone: the kernel drops it with the host's network namespace, but
    asynchronously, and a new host of the same name cannot start while it exists ("File exists")."""
    name = veth_name(machine)
    deadline = time.monotonic() + timeout
    while run(["ip", "link", "show", "dev", name], check=False).returncode == 0:
        if time.monotonic() > deadline:
            run(["ip", "link", "delete", "dev", name], check=False)
            return
        time.sleep(0.2)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None when the PID is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the PID, an identity a reused PID cannot fake."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and fields[0] != "Z" else None


def container_init(nspawn_pid: int, timeout: float = 10.0) -> tuple[int, int]:
    """(PID, start ticks) of the host's systemd, the child nspawn starts as PID 1 of the container."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
        except OSError:
            break
        for child in map(int, children):
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            ticks = start_ticks(child)
            if b"container=systemd-nspawn" in environ and ticks is not None:
                return child, ticks
        time.sleep(0.1)
    raise LabError(f"systemd-nspawn {nspawn_pid} did not start the host's systemd within {timeout:.0f}s")


def _wait(done: Callable[[], bool], timeout: float, reap: Iterable[int]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in reap:
            _reap(pid)
        if done():
            return True
        time.sleep(0.1)
    return done()


def power_cut(h: HostState) -> None:
    """End the host as a power cut would: SIGKILL its init (which ends every process of its PID namespace at
    once: nothing flushes, nothing is archived), then its nspawn."""
    stop(h, timeout=0.0, graceful=False)


def stop(h: HostState, timeout: float = STOP_TIMEOUT, graceful: bool = True) -> None:
    """Halt the host by PID: TERM to nspawn (it shuts systemd down cleanly), KILL after `timeout`.

    A host whose nspawn was killed from outside keeps running as an orphan; its recorded systemd is then
    asked to halt (SIGRTMIN+3) and killed if it does not, which ends every process of its PID namespace.
    """
    nspawns = {pid for pid in (h.pid, *find_pids(h.machine)) if pid and is_running(pid, h.machine)}

    def init_alive() -> bool:
        return bool(h.init_pid) and h.init_started is not None and start_ticks(h.init_pid) == h.init_started

    def gone() -> bool:
        return not init_alive() and not any(is_running(pid, h.machine) for pid in nspawns)

    if gone():
        return
    if graceful:
        for pid in nspawns:
            os.kill(pid, signal.SIGTERM)
        if not nspawns and h.init_pid:
            os.kill(h.init_pid, signal.SIGRTMIN + 3)
        if _wait(gone, timeout, nspawns):
            return
    elif init_alive() and h.init_pid:
        os.kill(h.init_pid, signal.SIGKILL)
    for pid in nspawns:
        os.kill(pid, signal.SIGKILL)
    if init_alive() and h.init_pid:
        os.kill(h.init_pid, signal.SIGKILL)
    if not _wait(gone, 10.0, nspawns):
        raise LabError(f"{h.name}: host processes survived SIGKILL (nspawn {sorted(nspawns)}, init {h.init_pid})")


def _reap(pid: int) -> None:
    """Collect the exit status if nspawn is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


