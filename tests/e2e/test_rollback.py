"""End to end: `tsdeploy rollback` on the deployed split lab, between the session's release and a second one.

The second release is a copy of the session's app tree whose OpenAPI document carries another version, so
which release serves is visible through nginx. Order: rollback refused (one release has served) -> deploy
release 2 -> rollback serves release 1 -> a redeploy of release 2 restores it -> `rollback --to` release 1
(teardown) leaves the lab as the session had it.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tsdeploy import artifacts
from tsdeploy.inventory import load

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

TSDEPLOY = str(pathlib.Path(sys.executable).parent / "tsdeploy")
APP_HOSTS = ("app1", "app2")
OPENAPI = pathlib.Path("src") / "talentsphere" / "openapi.py"
SESSION_VERSION = '"version": "1.0.0"'
SECOND_VERSION = '"version": "1.0.0+e2e-second-release"'


def tsdeploy(*args: str, app_dir: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | ({"TSDEPLOY_APP_DIR": str(app_dir)} if app_dir else {})
    return subprocess.run([TSDEPLOY, *args], env=env, capture_output=True, text=True, check=False)


def served_versions(deployment: Deployment, requests: int = 6) -> set[str]:
    """The OpenAPI `info.version` of `requests` requests through nginx (they spread over both app hosts)."""
    hostvars = load(deployment.lab.inventory_dir).hostvars["lb1"]
    context = ssl.create_default_context(cafile=hostvars["tls_ca_cert_file"])
    versions = set()
    for _ in range(requests):
        url = f"https://{deployment.lab.hosts['lb1']}/api/openapi.json"
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            versions.add(json.loads(response.read())["info"]["version"])
    return versions


def live_release(deployment: Deployment, host: str) -> str:
    result = subprocess.run(["ssh", "-F", str(deployment.lab.ssh_config), host, "readlink /opt/talentsphere/current"],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip().rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def second_app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A copy of the session's app tree whose only change is the version in its OpenAPI document."""
    copy = tmp_path_factory.mktemp("second-release") / "app"
    shutil.copytree(artifacts.app_source_dir(), copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests"))
    source = (copy / OPENAPI).read_text()
    assert SESSION_VERSION in source, f"{OPENAPI} no longer holds {SESSION_VERSION}: update this test's marker"
    (copy / OPENAPI).write_text(source.replace(SESSION_VERSION, SECOND_VERSION))
    return copy


@pytest.fixture(scope="module")
def releases(deployed_split: Deployment, second_app: pathlib.Path) -> Iterator[dict[str, str]]:
    """Release 1 (the session's) live, release 2 deployed over it; at the end release 1 is live again."""
    first = live_release(deployed_split, "app1")
    result = tsdeploy("deploy", str(deployed_split.lab.inventory_dir), app_dir=second_app)
    assert result.returncode == 0, result.stderr[-3000:]
    second = artifacts.release_id(second_app)
    assert {host: live_release(deployed_split, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, second)
    yield {"first": first, "second": second}
    tsdeploy("rollback", str(deployed_split.lab.inventory_dir), "--to", first)


def test_rollback_refuses_while_no_other_release_has_served(deployed_split: Deployment) -> None:
    # Runs before the `releases` fixture deploys a second release: the session's release is the only one.
    result = tsdeploy("rollback", str(deployed_split.lab.inventory_dir))
    assert result.returncode != 0
    assert "rollback refused: there is no previous release on app1" in result.stderr, result.stderr[-2000:]


def test_a_deployed_second_release_serves(deployed_split: Deployment, releases: dict[str, str]) -> None:
    assert served_versions(deployed_split) == {"1.0.0+e2e-second-release"}


def test_rollback_serves_the_previous_release_on_every_app_host(deployed_split: Deployment,
                                                                 releases: dict[str, str]) -> None:
    result = tsdeploy("rollback", str(deployed_split.lab.inventory_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"rolling back to release {releases['first']}" in result.stderr
    assert {host: live_release(deployed_split, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                            releases["first"])
    assert served_versions(deployed_split) == {"1.0.0"}


def test_rollback_to_a_release_that_is_not_installed_is_refused(deployed_split: Deployment,
                                                                releases: dict[str, str]) -> None:
    result = tsdeploy("rollback", str(deployed_split.lab.inventory_dir), "--to", "000000000000")
    assert result.returncode != 0
    assert "release 000000000000 is not installed on every app host" in result.stderr, result.stderr[-2000:]


def test_a_later_deploy_brings_the_inventorys_release_back(deployed_split: Deployment, second_app: pathlib.Path,
                                                          releases: dict[str, str]) -> None:
    result = tsdeploy("deploy", str(deployed_split.lab.inventory_dir), app_dir=second_app)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {host: live_release(deployed_split, host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS,
                                                                                            releases["second"])
    assert served_versions(deployed_split) == {"1.0.0+e2e-second-release"}
