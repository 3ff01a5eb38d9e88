"""Running commands on the control node and reporting progress, shared by every lab module."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Debian packages the lab needs on the control node, keyed by the command that proves each is present.
REQUIRED_COMMANDS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "nft": "nftables",
    "openssl": "openssl",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
}

_STARTED = time.monotonic()


class LabError(RuntimeError):
    """A lab operation failed; the message says what, with which value, and how to fix it."""


def progress(message: str) -> None:
    """Show one progress line on stderr (results go to stdout)."""
    print(f"[lab {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    stdin: str | None = None,
    check: bool = True,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command without a shell and return its result; raise LabError naming it when it fails."""
    args = [str(part) for part in cmd]
    result = subprocess.run(
        args, input=stdin, capture_output=True, text=True, check=False, timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"command failed ({result.returncode}): {' '.join(args)}\n{detail}")
    return result


def require_root() -> None:
    """Refuse to run without root: nspawn, mounts, bridges and nftables all need it."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (systemd-nspawn, mounts, bridges, nftables): run it with sudo or as root")


def ensure_packages() -> None:
    """Install the Debian packages the lab uses, calling apt-get only when one is missing."""
    missing = sorted({pkg for command, pkg in REQUIRED_COMMANDS.items() if shutil.which(command) is None})
    if not missing:
        return
    progress(f"installing Debian packages on the control node: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"could not install {' '.join(missing)}: {result.stderr.strip()}")


@contextmanager
def file_lock(path: Path, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) so that concurrent labs take turns.

    `waiting` is shown as progress when another process holds the lock, so a long wait is explained.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                progress(waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_private(path: Path, content: str | bytes) -> None:
    """Write a file readable by root only (0600), creating it with that mode so it is never exposed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)
