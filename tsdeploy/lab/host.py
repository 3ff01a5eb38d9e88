"""One lab host: an overlay over the base image, its own identity, booted by systemd-nspawn."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tsdeploy.lab.image import DEPLOY_USER
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
        raise LabError(f"systemd-nspawn for {hostname} exited at once ({process.returncode}); see {log}")
    return process.pid


def stop(pid: int | None, machine: str, timeout: float = STOP_TIMEOUT) -> None:
    """Halt the host: TERM makes nspawn shut systemd down cleanly; KILL if it has not gone after `timeout`."""
    if not is_running(pid, machine):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(pid, machine):
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    while is_running(pid, machine):
        _reap(pid)
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect the exit status if nspawn is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def remove_host_dir(host_dir: Path) -> None:
    unmount_overlay(host_dir)
    shutil.rmtree(host_dir, ignore_errors=True)
