"""Build and cache one bootable Debian base image per release, shared read-only by every lab host."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tsdeploy.lab.mirror import machine_mirror
from tsdeploy.lab.system import LabError, file_lock, progress, run

CACHE_DIR = Path("/var/cache/tsdeploy")
RELEASES = ("bookworm", "trixie")
# What a minbase Debian lacks to boot systemd in a container (systemd, systemd-sysv, dbus), be deployed to over
# SSH (openssh-server, sudo, python3) and be checked on the network (iproute2, iputils-ping).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "python3", "sudo", "iputils-ping")
DEPLOY_USER = "deploy"
# Bump when the image recipe changes so that cached images built by an older recipe are rebuilt.
RECIPE_VERSION = "1"


def image_dir(release: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the finished base image of `release` lives."""
    return cache_dir / f"base-{release}"


def _stamp(release: str) -> str:
    return f"recipe={RECIPE_VERSION} release={release} packages={','.join(PACKAGES)}\n"


def is_ready(release: str, cache_dir: Path = CACHE_DIR) -> bool:
    """True when a complete image built by the current recipe is cached for `release`."""
    stamp = image_dir(release, cache_dir) / ".tsdeploy-image"
    return stamp.is_file() and stamp.read_text() == _stamp(release)


def ensure_image(release: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cached base image of `release`, building it first if needed (one builder at a time)."""
    if release not in RELEASES:
        raise LabError(f"release {release!r} is not supported: use one of {', '.join(RELEASES)}")
    target = image_dir(release, cache_dir)
    with file_lock(cache_dir / f"base-{release}.lock", f"waiting for another lab to build the {release} base image"):
        if is_ready(release, cache_dir):
            return target
        _build(release, target)
    return target


def _chroot(root: Path, *cmd: str) -> None:
    run(["chroot", root, *cmd])


def _build(release: str, target: Path) -> None:
    """Debootstrap into a scratch directory, prepare it, then move it into place atomically."""
    mirror = machine_mirror()
    scratch = target.with_name(f"base-{release}.building")
    shutil.rmtree(scratch, ignore_errors=True)
    progress(f"building the {release} base image from {mirror} (about a minute, cached afterwards)")
    started = time.monotonic()
    run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", release, scratch, mirror],
        timeout=1800,
    )
    _prepare(scratch)
    if target.exists():
        shutil.rmtree(target)
    (scratch / ".tsdeploy-image").write_text(_stamp(release))
    scratch.rename(target)
    progress(f"built the {release} base image in {time.monotonic() - started:.0f}s")


def _prepare(root: Path) -> None:
    """Make the image safe to share: no identity of its own, networkd on, a deploy user with sudo."""
    # Every host gets its own SSH host keys and machine-id; the image must not carry any to share.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _chroot(root, "systemctl", "enable", "systemd-networkd")
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER)
    sudoers = root / "etc/sudoers.d" / DEPLOY_USER
    sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh_dir = root / "home" / DEPLOY_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    run(["chroot", root, "chown", f"{DEPLOY_USER}:{DEPLOY_USER}", f"/home/{DEPLOY_USER}/.ssh"])
    run(["chroot", root, "apt-get", "clean"])


def remove_images(cache_dir: Path = CACHE_DIR) -> None:
    """Drop every cached base image (lab down --purge); other caches in `cache_dir` stay."""
    for release in RELEASES:
        lock = cache_dir / f"base-{release}.lock"
        with file_lock(lock):
            shutil.rmtree(image_dir(release, cache_dir), ignore_errors=True)
            shutil.rmtree(cache_dir / f"base-{release}.building", ignore_errors=True)
        lock.unlink(missing_ok=True)
