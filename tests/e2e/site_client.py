"""The deployed split lab as the traffic tests use it: HTTPS requests through the lb, SSH to hosts, deploys.

The lab's nginx limits /api to 20 requests/s per client address, and /api/auth/ (login, registration) to 5 a
minute; all test traffic comes from one address, so `raised_api_limit` raises both limits for a test module's
run (a group_vars file it adds and removes, with a deploy each).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tsdeploy.inventory import load
from tsdeploy.topology import Topology
from traffic import Traffic, Write

if TYPE_CHECKING:
    from conftest import Deployment

TRAFFIC_OVERRIDE = "zz-e2e-traffic.yml"
TSDEPLOY = str(pathlib.Path(sys.executable).parent / "tsdeploy")


class Lab:
    """The deployed split lab: HTTPS to the lb, SSH to hosts."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.lab = deployment.lab
        self.lb = self.lab.hosts["lb1"]
        self.cafile = load(self.lab.inventory_dir).hostvars["lb1"]["tls_ca_cert_file"]
        self.context = ssl.create_default_context(cafile=self.cafile)

    def ssh(self, host: str, command: str, check: bool = True) -> str:
        result = subprocess.run(["ssh", "-F", str(self.lab.ssh_config), host, command], capture_output=True,
                                text=True, timeout=180, check=False)
        assert not check or result.returncode == 0, f"{host}: {command}: {result.stderr}"
        return result.stdout

    def request(self, method: str, path: str, body: dict | None = None, token: str | None = None,
                ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"https://{self.lb}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def traffic(self, paths: tuple[str, ...], workers: int = 8, write: Write | None = None,
                pace: float | None = None) -> Traffic:
        return Traffic(self.lb, self.cafile, paths, workers=workers, write=write, pace=pace)

    def employer(self) -> str:
        """A new employer with a verified company; returns its token."""
        tag = uuid.uuid4().hex[:10]
        email, password = f"e2e-{tag}@example.com", f"pw-{uuid.uuid4().hex}"
        status, body = self.request("POST", "/api/auth/register", {
            "email": email, "password": password, "full_name": "E2E Employer", "role": "employer"})
        assert status == 202, body  # no token: registration must not tell whether the email had an account
        status, body = self.request("POST", "/api/auth/login", {"email": email, "password": password})
        assert status == 200, body
        token = body["token"]
        status, body = self.request("POST", "/api/companies", {"name": f"E2E {tag}", "slug": f"e2e-{tag}",
                                                              "industry": "Software", "location": "Berlin"}, token)
        assert status == 201, body
        # Only verified companies feature jobs (post_job does); the TalentSphere team verifies in the database.
        self.ssh("db1", "sudo runuser -u postgres -- psql -XAt -d talentsphere -c "
                        f"\"UPDATE companies SET is_verified = true WHERE slug = 'e2e-{tag}'\"")
        return token

    def post_job(self, token: str, title: str) -> int:
        status, body = self.request("POST", "/api/jobs", {
            "title": title, "description": "A job posted by the fault tests.", "location": "Berlin",
            "employment_type": "full_time", "experience_level": "mid", "is_featured": True,
            "status": "published"}, token)
        assert status == 201, body
        return body["job"]["id"]


def job_writes(token: str, title: str = "Traffic probe", every: int = 5) -> Write:
    """Every `every`-th request of a traffic run posts a published job as the employer of `token`; the ids the
    answers name are what the tests look for afterwards (lost writes)."""
    def body() -> dict:
        return {"title": f"{title} {uuid.uuid4().hex[:8]}", "description": "Posted by the e2e traffic.",
                "location": "Berlin", "employment_type": "full_time", "experience_level": "mid",
                "status": "published"}
    return Write("/api/jobs", token, body, lambda document: document["job"]["id"], every=every)


def _deploy(deployment: Deployment) -> None:
    process = subprocess.run([str(pathlib.Path(sys.executable).parent / "tsdeploy"), "deploy",
                              str(deployment.lab.inventory_dir)], capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr[-4000:]


def deployed_secret(lab, host: str, variable: str) -> str:  # noqa: ANN001
    """A secret as the lab's inventory gives it to `host` now (its vault: `tsdeploy rotate-secrets` changes it)."""
    return load(lab.inventory_dir).hostvars[host][variable]


def redis_cli(lab, host: str = "cache1") -> str:  # noqa: ANN001
    """redis-cli's words that reach `host`'s Redis as the app does: TLS to its private address on the inventory's
    port, the certificate verified with the lab's CA (Redis has no plain-text TCP port)."""
    redis = Topology(load(lab.inventory_dir)).host_context(host)["redis"]
    return f"redis-cli --tls --cacert {redis['tls_ca']} -h {redis['address']} -p {int(redis['port'])}"


def deploy(deployment: Deployment, *args: str, app_dir: pathlib.Path | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """`tsdeploy deploy` on the lab's inventory (shipping `app_dir` if given); asserts success unless told not."""
    env = os.environ | ({"TSDEPLOY_APP_DIR": str(app_dir)} if app_dir else {})
    process = subprocess.run([TSDEPLOY, "deploy", str(deployment.lab.inventory_dir), *args], env=env,
                             capture_output=True, text=True, check=False)
    assert not check or process.returncode == 0, process.stderr[-6000:]
    return process


@contextlib.contextmanager
def raised_api_limit(deployment: Deployment) -> Iterator[Lab]:
    """The lab with nginx's per-address API and auth limits raised (restored afterwards, with a deploy each)."""
    override = pathlib.Path(deployment.lab.inventory_dir) / "group_vars" / "all" / TRAFFIC_OVERRIDE
    override.write_text("# Written by the e2e traffic tests for their run: all their traffic comes from one "
                        "address.\nnginx_api_rate: 2000r/s\nnginx_api_burst: 4000\n"
                        "nginx_auth_rate: 2000r/s\nnginx_auth_burst: 4000\n")
    try:
        deploy(deployment)
        yield Lab(deployment)
    finally:
        override.unlink(missing_ok=True)
        deploy(deployment)
