"""End to end: the app stack of the deployed split lab, seen through nginx over HTTPS and on the app hosts.

Uses the session's `deployed_split` lab (db1, backup1, cache1, app1, app2, lb1 on Debian 12, tests/e2e/conftest.py).
Requests go to the lb over HTTPS, verified against the lab's CA; app-host facts are read over SSH.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import TYPE_CHECKING

import pytest

from tsdeploy.inventory import load

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
APP_HOSTS = ("app1", "app2")


def ssh(deployment: Deployment, host: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` on a lab host as the deploy user over the lab's ssh_config."""
    return subprocess.run(["ssh", "-F", str(deployment.lab.ssh_config), host, command],
                          capture_output=True, text=True, timeout=120, check=False)


def get(deployment: Deployment, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET https://<lb>/<path>, verifying the lb's certificate with the lab CA; (status, headers, body)."""
    hostvars = load(deployment.lab.inventory_dir).hostvars["lb1"]
    context = ssl.create_default_context(cafile=hostvars["tls_ca_cert_file"])
    url = f"https://{deployment.lab.hosts['lb1']}{path}"
    try:
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def app_metric(deployment: Deployment, host: str, name: str, labels: str) -> float:
    """A counter from an app host's own /metrics (read on the host: the app port is closed to others)."""
    address = deployment.lab.hosts[host]
    script = f"import urllib.request; print(urllib.request.urlopen('http://{address}:8000/metrics').read().decode())"
    result = ssh(deployment, host, f"python3 -c \"{script}\"")
    assert result.returncode == 0, result.stderr
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", result.stdout, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def current_release(deployment: Deployment, host: str) -> str:
    return ssh(deployment, host, "readlink /opt/talentsphere/current").stdout.strip()


def test_ready_answers_200_ok_through_nginx_over_https(deployed_split: Deployment) -> None:
    status, _, body = get(deployed_split, "/health/ready")
    assert status == 200
    assert json.loads(body)["status"] == "ok", body


def test_smoke_command_prints_the_lb_url(deployed_split: Deployment) -> None:
    result = subprocess.run([str(pathlib.Path(sys.executable).parent / "tsdeploy"), "smoke",
                             str(deployed_split.lab.inventory_dir)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"https://{deployed_split.lab.hosts['lb1']}/"


@pytest.mark.parametrize(("header", "expected"), [
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-XSS-Protection", "0"),
])
def test_responses_carry_the_baseline_security_header_once(deployed_split: Deployment, header: str,
                                                          expected: str) -> None:
    hostvars = load(deployed_split.lab.inventory_dir).hostvars["lb1"]
    context = ssl.create_default_context(cafile=hostvars["tls_ca_cert_file"])
    with urllib.request.urlopen(f"https://{deployed_split.lab.hosts['lb1']}/health/ready", context=context,
                                timeout=30) as response:
        assert response.headers.get_all(header) == [expected]


def test_server_header_does_not_reveal_the_nginx_version(deployed_split: Deployment) -> None:
    _, headers, _ = get(deployed_split, "/health/ready")
    assert headers["Server"] == "nginx"


def test_seeded_jobs_are_searchable(deployed_split: Deployment) -> None:
    status, _, body = get(deployed_split, "/api/jobs?q=developer")
    assert status == 200
    assert len(json.loads(body)["items"]) > 0, body[:300]


def test_job_search_is_served_from_the_cache_on_the_second_call(deployed_split: Deployment) -> None:
    labels = 'namespace="job_search"'
    hits_before = sum(app_metric(deployed_split, host, "talentsphere_cache_hits_total", labels) for host in APP_HOSTS)
    path = "/api/jobs?" + urllib.parse.urlencode({"q": f"engineer {uuid.uuid4().hex}"})
    first, second = get(deployed_split, path), get(deployed_split, path)
    assert first[0] == second[0] == 200
    assert first[2] == second[2]
    hits_after = sum(app_metric(deployed_split, host, "talentsphere_cache_hits_total", labels) for host in APP_HOSTS)
    assert hits_after - hits_before >= 1


@pytest.mark.parametrize("host", APP_HOSTS)
def test_gunicorn_runs_the_configured_number_of_workers(deployed_split: Deployment, host: str) -> None:
    configured = ssh(deployed_split, host, "sudo sed -n 's/^workers = //p' /etc/talentsphere/gunicorn.conf.py")
    running = ssh(deployed_split, host,
                  "pgrep -c -P $(systemctl show -p MainPID --value talentsphere.service)")
    assert configured.stdout.strip() == "5"  # host_cpus 2 in the lab: 2 x 2 + 1
    assert running.stdout.strip() == configured.stdout.strip()


@pytest.mark.parametrize("host", APP_HOSTS)
def test_app_unit_passes_the_systemd_security_gate(deployed_split: Deployment, host: str) -> None:
    result = ssh(deployed_split, host, "sudo systemd-analyze security --threshold=30 talentsphere.service")
    assert result.returncode == 0, result.stdout[-800:]


@pytest.mark.parametrize("host", APP_HOSTS)
def test_env_file_is_readable_only_by_root_and_the_app_group(deployed_split: Deployment, host: str) -> None:
    result = ssh(deployed_split, host, "sudo stat -c '%U:%G %a' /etc/talentsphere/env")
    assert result.stdout.strip() == "root:talentsphere 640"


@pytest.mark.parametrize("host", APP_HOSTS)
def test_no_secret_appears_in_any_process_command_line(deployed_split: Deployment, host: str) -> None:
    inventory = load(deployed_split.lab.inventory_dir).hostvars[host]
    processes = ssh(deployed_split, host, "ps -eo args").stdout
    for variable in ("postgresql_app_password", "redis_app_password", "app_secret_key"):
        assert inventory[variable] not in processes, variable


@pytest.fixture
def broken_app(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of app/ whose WSGI module fails to import: a release that must never go live."""
    copy = tmp_path / "app"
    shutil.copytree(REPO / "app", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests"))
    wsgi = copy / "src" / "talentsphere" / "wsgi.py"
    wsgi.write_text('raise ImportError("a deliberately broken release (e2e test)")\n' + wsgi.read_text())
    return copy


def test_a_release_that_fails_to_import_leaves_the_previous_release_serving(
        deployed_split: Deployment, broken_app: pathlib.Path) -> None:
    live = {host: current_release(deployed_split, host) for host in APP_HOSTS}
    tsdeploy = str(pathlib.Path(sys.executable).parent / "tsdeploy")
    result = subprocess.run([tsdeploy, "deploy", str(deployed_split.lab.inventory_dir)],
                            env=os.environ | {"TSDEPLOY_APP_DIR": str(broken_app)},
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0, "deploying a release that cannot import must fail"
    assert "check-config" in result.stderr or "Check release" in result.stderr, result.stderr[-2000:]
    assert {host: current_release(deployed_split, host) for host in APP_HOSTS} == live
    status, _, body = get(deployed_split, "/health/ready")
    assert status == 200 and json.loads(body)["status"] == "ok"
    # Deploying the good release again finds it live: nothing to switch, nothing to restart.
    again = subprocess.run([tsdeploy, "deploy", str(deployed_split.lab.inventory_dir)], capture_output=True,
                           text=True, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert app_role_changes(again.stderr) == [], again.stdout


def app_role_changes(pyinfra_output: str) -> list[tuple[str, str]]:
    """(operation, host) pairs of the app role that pyinfra reported as changed ("Success") in its output."""
    changes, operation = [], ""
    for line in pyinfra_output.splitlines():
        if line.startswith("--> Starting"):
            operation = line.split(": ", 1)[-1].strip()
        elif operation.startswith("TalentSphere app |") and (match := re.match(r"\s+\[(\S+)\] Success", line)):
            changes.append((operation, match.group(1)))
    return changes
