"""End to end: the `generate vm` bundle of each split-lab host equals, byte for byte, what the deploy wrote.

For every host of the deployed split lab the bundle is generated with --with-secrets, then one SSH command
per host hashes and stats every managed file (as root): sha256, owner, group and mode must match the bundle's
manifest.json. Its install.sh, run on the deployed host, must then find nothing to change, and put back a
file edited by hand (reloading only that file's service).
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from tsdeploy.generate import generate as generate_group

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

SPLIT_HOSTS = ("db1", "cache1", "app1", "app2", "lb1")


def ssh(deployment: Deployment, host: str, command: str, stdin: bytes | None = None,
        ) -> subprocess.CompletedProcess[bytes]:
    """Run `command` on a lab host as the deploy user over the lab's ssh_config (one SSH session)."""
    return subprocess.run(["ssh", "-F", str(deployment.lab.ssh_config), host, command], input=stdin,
                          capture_output=True, timeout=120, check=False)


def host_state(deployment: Deployment, host: str, paths: list[str]) -> dict[str, dict[str, str]]:
    """path -> {sha256, mode, owner, group} of each file on the host, read with sudo in one SSH session."""
    quoted = " ".join(shlex.quote(path) for path in paths)
    command = f"sudo -n stat -c 'stat %a %U %G %n' {quoted}; sudo -n sha256sum {quoted}"
    result = ssh(deployment, host, command)
    state: dict[str, dict[str, str]] = {path: {} for path in paths}
    for line in result.stdout.decode().splitlines():
        if line.startswith("stat "):
            _, mode, owner, group, path = line.split(" ", 4)
            state[path].update(mode=mode, owner=owner, group=group)
        else:
            digest, path = line.split(maxsplit=1)
            state[path]["sha256"] = digest
    missing = [path for path, found in state.items() if "sha256" not in found]
    assert not missing, f"{host}: cannot read {missing}: {result.stderr.decode().strip()}"
    return state


@pytest.fixture(scope="module")
def bundles(deployed_split: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """host -> its bundle, generated with the lab's secrets."""
    made = {}
    for host in SPLIT_HOSTS:
        out = tmp_path_factory.mktemp("bundles") / host
        result = CliRunner().invoke(generate_group, ["vm", "--inventory", str(deployed_split.lab.inventory_dir),
                                                     "--host", host, "--out", str(out), "--with-secrets"])
        assert result.exit_code == 0, result.output
        made[host] = out
    return made


@pytest.mark.parametrize("host", SPLIT_HOSTS)
def test_generated_bundle_matches_the_deployed_host_byte_for_byte(deployed_split: Deployment, host: str,
                                                                   bundles: dict[str, pathlib.Path]) -> None:
    out = bundles[host]
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert files, f"the bundle of {host} holds no files"
    deployed = host_state(deployed_split, host, [entry["path"] for entry in files])
    differences = [
        f"{entry['path']}: bundle {entry['sha256'][:12]} {entry['owner']}:{entry['group']} {entry['mode']}, "
        f"host {found['sha256'][:12]} {found['owner']}:{found['group']} {found['mode']}"
        for entry in files
        if (found := deployed[entry["path"]]) != {key: entry[key] for key in ("sha256", "owner", "group", "mode")}
    ]
    assert not differences, f"{host}: generated files differ from the deployed ones:\n" + "\n".join(differences)


def run_install(deployment: Deployment, host: str, bundle: pathlib.Path) -> list[str]:
    """Copy the bundle to the host, run its install.sh as root; return what it did (its `>> ` lines)."""
    archive = subprocess.run(["tar", "-C", str(bundle), "-c", "."], capture_output=True, check=True).stdout
    remote = f"/tmp/tsdeploy-bundle-{host}"
    # The bundle holds secrets: unpacked into a 0700 directory and removed whatever the outcome.
    result = ssh(deployment, host, f"rm -rf {remote} && mkdir -m 700 {remote} && tar -x -C {remote} && "
                                   f"sudo -n {remote}/install.sh; status=$?; rm -rf {remote}; exit $status",
                 stdin=archive)
    output = result.stdout.decode()
    assert result.returncode == 0, f"{host}: install.sh failed:\n{output}{result.stderr.decode()}"
    lines = [line.removeprefix(">> ") for line in output.splitlines() if line.startswith(">> ")]
    assert lines[-1] == f"done: {host} matches the bundle", output
    return [line for line in lines[:-1] if not re.match(r"\d/5 ", line)]


@pytest.mark.parametrize("host", SPLIT_HOSTS)
def test_install_script_on_the_deployed_host_changes_nothing(deployed_split: Deployment, host: str,
                                                            bundles: dict[str, pathlib.Path]) -> None:
    acted = run_install(deployed_split, host, bundles[host])
    assert acted == [], f"{host}: install.sh changed a freshly deployed host:\n" + "\n".join(acted)


def test_install_script_puts_back_a_drifted_file_and_reloads_only_its_service(
        deployed_split: Deployment, bundles: dict[str, pathlib.Path]) -> None:
    site = "/etc/nginx/sites-available/talentsphere.conf"
    drifted = ssh(deployed_split, "lb1", f"echo '# edited by hand' | sudo -n tee -a {site} >/dev/null")
    assert drifted.returncode == 0, drifted.stderr.decode()
    acted = run_install(deployed_split, "lb1", bundles["lb1"])
    assert acted == [f"installed {site} (root:root 640)", "reloaded nginx"]
    assert run_install(deployed_split, "lb1", bundles["lb1"]) == []
