"""Lab fixtures for the end-to-end tests: real systemd-nspawn hosts, removed at session end even on failure.

`split_lab` (Debian 12, db1 backup1 cache1 app1 app2 lb1) and `trixie_lab` (Debian 13, ts1 in every group) each get a
unique lab name (own subnet, bridge and nft table) and an inventory directory under pytest's tmp dir.
Deploy fixtures that build on them go below the lab fixtures.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tsdeploy import artifacts
from tsdeploy.lab import Lab

_started: dict[str, Lab] = {}


def _remove_started_labs() -> None:
    """Last resort (atexit, SIGTERM/SIGHUP): remove every lab this session started that is still up."""
    errors = []
    for name, lab in list(_started.items()):
        try:
            lab.down()
        except Exception as error:  # keep removing the other labs, then report the first failure
            errors.append(error)
        finally:
            _started.pop(name, None)
    if errors:
        raise errors[0]


def _interrupt_on_signal(_signum: int, _frame: object) -> None:
    # pytest stops the session on KeyboardInterrupt and still runs fixture teardown; atexit covers the rest.
    raise KeyboardInterrupt


atexit.register(_remove_started_labs)
for _signal in (signal.SIGTERM, signal.SIGHUP):
    if signal.getsignal(_signal) in (signal.SIG_DFL, None):
        signal.signal(_signal, _interrupt_on_signal)


def lab_name(purpose: str) -> str:
    """A lab name unique to this test session (several sessions may share the machine)."""
    return f"e2e-{purpose}-{os.getpid()}"


class LabFactory:
    """Builds labs for tests and remembers them, so that each is removed even if the session dies."""

    def start(self, purpose: str, topology: str, release: str, inventory_dir: Path) -> Lab:
        lab = Lab(lab_name(purpose))
        _started[lab.name] = lab
        return lab.up(topology, release, inventory_dir)

    def stop(self, purpose: str) -> None:
        lab = Lab(lab_name(purpose))
        lab.down()
        _started.pop(lab.name, None)  # only once it is really gone: an interrupted down is retried atexit


@pytest.fixture(scope="session", autouse=True)
def pinned_app_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One copy of app/ shipped by every deploy of the session (TSDEPLOY_APP_DIR), taken at its start.

    A deploy ships whatever app/ holds; on a machine where app/ is being edited, a "second deploy" would
    rightly ship a new release. Pinning the input keeps "the same inputs change nothing" testable. Tests
    that ship another tree pass their own TSDEPLOY_APP_DIR.
    """
    if os.environ.get("TSDEPLOY_APP_DIR"):
        yield artifacts.app_source_dir()
        return
    copy = tmp_path_factory.mktemp("pinned-app") / "app"
    shutil.copytree(artifacts.APP_DIR, copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests", ".*"))
    os.environ["TSDEPLOY_APP_DIR"] = str(copy)
    try:
        yield copy
    finally:
        os.environ.pop("TSDEPLOY_APP_DIR", None)


@pytest.fixture(scope="session")
def lab_factory() -> Iterator[LabFactory]:
    """Start labs with `.start(purpose, topology, release, inventory_dir)`; all are removed at session end."""
    try:
        yield LabFactory()
    finally:
        _remove_started_labs()


@pytest.fixture(scope="session")
def split_lab(lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Debian 12 hosts db1, backup1, cache1, app1, app2, lb1, monitor1 with an inventory; removed at session end."""
    try:
        yield lab_factory.start("split", "split", "bookworm", tmp_path_factory.mktemp("split-inventory"))
    finally:
        lab_factory.stop("split")


@pytest.fixture(scope="session")
def trixie_lab(lab_factory: LabFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One Debian 13 host ts1 in every group with an inventory; removed at session end."""
    try:
        yield lab_factory.start("trixie", "single", "trixie", tmp_path_factory.mktemp("trixie-inventory"))
    finally:
        lab_factory.stop("trixie")


@dataclass(frozen=True)
class Deployment:
    """A lab deployed once with `tsdeploy deploy`: the lab, the command's last line and how long it took."""

    lab: Lab
    summary: str
    seconds: float


def run_deploy(lab: Lab) -> tuple[str, float, list[str]]:
    """Run `tsdeploy deploy` on the lab's inventory: its last stdout line, the wall time, what changed."""
    started = time.monotonic()
    process = subprocess.run([str(Path(sys.executable).parent / "tsdeploy"), "deploy", str(lab.inventory_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.monotonic() - started
    assert process.returncode == 0, f"tsdeploy deploy failed:\n{process.stderr[-6000:]}\n{process.stdout}"
    changes = [line.strip().removeprefix("changed  ") for line in process.stderr.splitlines()
               if line.startswith("  changed  ")]
    return process.stdout.strip().splitlines()[-1], seconds, changes


@pytest.fixture(scope="session")
def deployed_split(split_lab: Lab) -> Deployment:
    """The split lab after one cold `tsdeploy deploy` (once per session; verify and app tests reuse it)."""
    summary, seconds, _ = run_deploy(split_lab)
    return Deployment(split_lab, summary, seconds)


@pytest.fixture(scope="session")
def deployed_trixie(trixie_lab: Lab) -> Deployment:
    """The Debian 13 single-host lab after one cold `tsdeploy deploy` (once per session)."""
    summary, seconds, _ = run_deploy(trixie_lab)
    return Deployment(trixie_lab, summary, seconds)


@pytest.fixture
def redeploy() -> Callable[[Lab], tuple[str, float, list[str]]]:
    """`redeploy(lab)` runs `tsdeploy deploy` again and returns (last line, seconds, changed operations)."""
    return run_deploy
