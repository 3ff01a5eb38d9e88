"""Kernel settings the lab needs on the control node, saved first and restored when the last lab goes."""

from __future__ import annotations

import json
from pathlib import Path

# Minimum values: IPv4 forwarding for the hosts' NAT; inotify instances because every host's systemd,
# journald, logind, networkd and dbus each take some, and the default of 128 per user runs out with a few
# labs ("Failed to allocate manager object: Too many open files").
MINIMUMS = {
    "net.ipv4.ip_forward": 1,
    "fs.inotify.max_user_instances": 8192,
}


def _path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read(key: str) -> int:
    return int(_path(key).read_text().strip())


def apply(saved: Path) -> None:
    """Raise each setting to its minimum, saving the value found before the first lab changed it."""
    original: dict[str, int] = json.loads(saved.read_text()) if saved.exists() else {}
    for key, minimum in MINIMUMS.items():
        current = read(key)
        original.setdefault(key, current)
        if current < minimum:
            _path(key).write_text(f"{minimum}\n")
    saved.write_text(json.dumps(original, indent=2) + "\n")


def restore(saved: Path) -> None:
    """Put back every value `apply` saved (call when no lab is left)."""
    if not saved.exists():
        return
    for key, value in json.loads(saved.read_text()).items():
        _path(key).write_text(f"{value}\n")
    saved.unlink()
