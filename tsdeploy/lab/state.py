"""What a lab recorded about itself in /var/lib/tsdeploy/labs/<name>/, so that down/status work later."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tsdeploy.lab.system import LabError

STATE_ROOT = Path("/var/lib/tsdeploy/labs")
# Kernel settings as found before the first lab changed them; restored by the last lab down.
SYSCTL_SAVED = STATE_ROOT.parent / "sysctl.orig.json"
GLOBAL_LOCK = STATE_ROOT.parent / "labs.lock"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")


def check_name(name: str) -> str:
    """Return `name` if it is a valid lab name, else explain what is allowed."""
    if not _NAME.match(name):
        raise LabError(
            f"lab name {name!r} is invalid: use 1-24 characters, lowercase letters, digits and '-', "
            "starting with a letter (e.g. --name ci-split)"
        )
    return name


@dataclass
class HostState:
    """One lab host: its address and groups, the PID of its systemd-nspawn and of the systemd inside."""

    name: str
    address: str
    machine: str
    groups: list[str]
    pid: int | None = None
    init_pid: int | None = None
    init_started: int | None = None


@dataclass
class LabState:
    """Everything `lab down` needs to undo `lab up`."""

    name: str
    index: int
    subnet: str
    bridge: str
    nft_table: str
    topology: str
    release: str
    inventory_dir: str | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)

    @staticmethod
    def directory(name: str, root: Path = STATE_ROOT) -> Path:
        return root / name

    def save(self, root: Path = STATE_ROOT) -> None:
        path = self.directory(self.name, root) / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, name: str, root: Path = STATE_ROOT) -> LabState | None:
        path = cls.directory(name, root) / "state.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        hosts = {key: HostState(**value) for key, value in raw.pop("hosts").items()}
        return cls(**raw, hosts=hosts)


def lab_names(root: Path = STATE_ROOT) -> list[str]:
    """Names of every lab with a state directory."""
    if not root.is_dir():
        return []
    return sorted(path.parent.name for path in root.glob("*/state.json"))
