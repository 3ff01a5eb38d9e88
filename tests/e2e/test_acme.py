"""End to end: the lb's certificate from an ACME CA, issued and renewed by certbot, served by nginx.

A local ACME server plays Let's Encrypt: Debian's pebble on the control node (its HTTPS certificate from the
lab CA, which the lb trusts through `nginx_acme_ca_file`), resolving every name to lb1 through
pebble-challtestsrv's DNS, and validating the HTTP-01 challenge on lb1's port 80 as a public CA would. The
module deploys the split lab with `nginx_acme_directory` set, checks the certificate nginx serves, a second
deploy's zero changes, the verify controls, and a renewal (certbot's own `renew`, whose deploy hook reloads
nginx); then it deploys the lab back to its file certificate.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from site_client import deploy
from tsdeploy import controls
from tsdeploy.lab.pki import ensure_ca, ensure_host_cert

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

TSDEPLOY = str(pathlib.Path(sys.executable).parent / "tsdeploy")
NAME = "jobs.acme-e2e.test"
OVERRIDE = "zz-e2e-acme.yml"
SUMMARY = re.compile(r"^changed: (\d+) operations on (\d+) hosts$", re.MULTILINE)


def _wait_port(address: str, port: int, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{what} does not listen on {address}:{port}")


@pytest.fixture(scope="module")
def acme_server(deployed_split: Deployment,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pathlib.Path]]:
    """pebble and its DNS on the control node's lab address; the ACME directory URL and its CA bundle."""
    if not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"):
        pytest.fail("pebble is not installed: run `make system-deps` (Debian's pebble package)")
    lab = deployed_split.lab
    lb = lab.hosts["lb1"]
    route = subprocess.run(["ip", "-4", "route", "get", lb], capture_output=True, text=True, check=True).stdout
    control = route.split(" src ")[1].split()[0]  # the control node's address on the lab bridge
    workdir = tmp_path_factory.mktemp("pebble")
    pki = lab.state_dir / "pki"
    cert, key = ensure_host_cert(workdir, ensure_ca(pki, lab.name), "acme", control)
    config = workdir / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{control}:14000", "managementListenAddress": f"{control}:15000",
        "certificate": str(cert), "privateKey": str(key),
        # Validate HTTP-01 on port 80 and TLS-ALPN-01 on 443, as a public CA does.
        "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    logs = workdir / "pebble.log"
    with logs.open("w") as log:
        dns = subprocess.Popen(["pebble-challtestsrv", "-defaultIPv4", lb, "-defaultIPv6", "", "-dns01",
                                "127.0.0.1:8053", "-http01", "", "-https01", "", "-tlsalpn01", "",
                                "-management", "127.0.0.1:8055"], stdout=log, stderr=subprocess.STDOUT)
        # No validation delay; no nonce rejected at random (certbot retries them, but slowly).
        env = os.environ | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        pebble = subprocess.Popen(["pebble", "-config", str(config), "-dnsserver", "127.0.0.1:8053"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_port(control, 14000, "pebble")
            _wait_port(control, 15000, "pebble's management interface")
            # The root pebble generated at its start signs what it issues: the CA bundle holds it and the lab
            # CA (pebble's own HTTPS), as a private ACME CA's would hold its root.
            context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            with urllib.request.urlopen(f"https://{control}:15000/roots/0", context=context, timeout=10) as answer:
                root = answer.read().decode()
            bundle = workdir / "acme-ca.pem"
            bundle.write_text((pki / "ca.crt").read_text() + root)
            yield f"https://{control}:14000/dir", bundle
        finally:
            for process in (pebble, dns):
                process.terminate()
                process.wait(timeout=10)
            print(f"\npebble log: {logs}")


@pytest.fixture(scope="module")
def acme_lab(deployed_split: Deployment,
             acme_server: tuple[str, pathlib.Path]) -> Iterator[tuple[Deployment, subprocess.CompletedProcess]]:
    """The split lab deployed with the lb's certificate from the ACME server; the file certificate afterwards."""
    lab = deployed_split.lab
    override = pathlib.Path(lab.inventory_dir) / "group_vars" / "all" / OVERRIDE
    directory, ca_file = acme_server
    override.write_text("# Written by tests/e2e/test_acme.py: the lb's certificate from the local ACME server.\n"
                        f"nginx_server_name: {NAME}\nnginx_acme_directory: {directory}\n"
                        f"nginx_acme_ca_file: {ca_file}\nnginx_acme_email: ops@acme-e2e.test\n")
    try:
        yield deployed_split, deploy(deployed_split)
    finally:
        override.unlink(missing_ok=True)
        deploy(deployed_split)


def served_certificate(lb: str) -> dict:
    """The certificate lb1 serves for NAME (SNI), not verified (its chain is pebble's throwaway root)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((lb, 443), timeout=10) as raw, context.wrap_socket(raw, server_hostname=NAME) as tls:
        der = tls.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer", "-serial", "-enddate",
                           "-ext", "subjectAltName"], input=der, capture_output=True, check=True).stdout.decode()
    return {"text": text, "serial": re.search(r"serial=(\w+)", text)[1]}


def ssh(lab, host: str, command: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run(["ssh", "-F", str(lab.ssh_config), host, command], capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_lb_serves_a_certificate_the_acme_ca_issued_for_the_site_name(acme_lab) -> None:  # noqa: ANN001
    deployment, _ = acme_lab
    served = served_certificate(deployment.lab.hosts["lb1"])
    assert f"DNS:{NAME}" in served["text"], served["text"]
    assert "Pebble" in served["text"], f"not issued by the ACME server: {served['text']}"


def test_a_second_deploy_changes_nothing_and_issues_no_certificate(acme_lab) -> None:  # noqa: ANN001
    deployment, _ = acme_lab
    before = served_certificate(deployment.lab.hosts["lb1"])["serial"]
    again = deploy(deployment)
    assert SUMMARY.search(again.stdout + again.stderr)[1] == "0", again.stderr[-3000:]
    assert served_certificate(deployment.lab.hosts["lb1"])["serial"] == before


def test_verify_checks_the_served_certificate_and_its_renewal(acme_lab, tmp_path: pathlib.Path) -> None:  # noqa: ANN001
    deployment, _ = acme_lab
    report = tmp_path / "report"
    process = subprocess.run([TSDEPLOY, "verify", str(deployment.lab.inventory_dir), "--report", str(report),
                              "--limit", "lb"], capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    built = controls.build_rows(controls.load_catalogue(), controls.read_junit(report / "junit.xml"))
    row = next(row for row in built if row.control.id == "ts-tls-02")
    assert row.status == controls.PASS, row


def test_certbot_renews_and_its_hook_has_nginx_serve_the_new_certificate(acme_lab) -> None:  # noqa: ANN001
    deployment, _ = acme_lab
    lab = deployment.lab
    before = served_certificate(lab.hosts["lb1"])["serial"]
    # certbot.service is what certbot.timer starts (`certbot -q renew`), with the unit's environment (the ACME
    # CA's trust); forced here, since the certificate is far from its renewal date, and without the random
    # delay of up to 8 minutes certbot adds to a renewal that runs without a terminal.
    renew = ssh(lab, "lb1", "sudo sh -c 'export $(systemctl show --property=Environment --value certbot.service); "
                            "certbot -q renew --force-renewal --no-random-sleep-on-renew'")
    assert renew.returncode == 0, renew.stderr
    deadline = time.monotonic() + 20
    while (after := served_certificate(lab.hosts["lb1"])["serial"]) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after != before, "nginx still serves the certificate from before the renewal"
