"""The site's certificate from an ACME CA (nginx_acme_*): validation, what the role manages, and the port-80 site
that serves HTTP-01 challenges, run by a real nginx. The issuance and renewal against a real ACME server
(pebble) run on the lab: tests/e2e/test_acme.py."""

from __future__ import annotations

import pathlib
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from roles.nginx import manifest
from roles.nginx.acme import AcmeCertificate
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

from test_inventory import problems_of, write_inventory as write_validated_inventory
from test_nginx_rate_limits import free_port, nginx_serving, on_loopback, self_signed
from test_templates_app import write_inventory

ACME = {"nginx_acme_directory": "https://acme.example.test/directory", "nginx_acme_email": "ops@example.test"}


def acme_ctx(tmp_path: pathlib.Path, **extra: object) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {**ACME, **extra})), "lb1")


# Validation, before any host is touched -----------------------------------------------------------------------
@pytest.mark.parametrize(("setting", "value", "message"), [
    ("nginx_acme_directory", "http://acme.example.test/directory", "is not an ACME directory URL"),
    ("nginx_acme_directory", "acme-v02.api.letsencrypt.org", "is not an ACME directory URL"),
    ("nginx_acme_email", "ops-at-example", "is not an email address"),
    ("nginx_acme_ca_file", "/nonexistent/acme-ca.pem", "is not a readable file on the control node"),
])
def test_a_wrong_acme_setting_is_refused_naming_the_variable(tmp_path: pathlib.Path, setting: str, value: str,
                                                            message: str) -> None:
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={**ACME, setting: value}))
    assert any(f"{setting} = {value!r}" in problem and message in problem for problem in problems), problems


@pytest.mark.parametrize("name", ["_", "198.51.100.7"])
def test_an_acme_ca_needs_a_dns_name_to_issue_for(tmp_path: pathlib.Path, name: str) -> None:
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={**ACME, "nginx_server_name": name}))
    assert any(problem.startswith(f"lb1: nginx_acme_directory is set, but nginx_server_name = {name!r}")
               and "fix: set nginx_server_name" in problem for problem in problems), problems


def test_an_acme_inventory_with_a_dns_name_is_accepted(tmp_path: pathlib.Path) -> None:
    load(write_validated_inventory(tmp_path, main_overrides=ACME))


# What the role manages ----------------------------------------------------------------------------------------
def test_with_an_acme_ca_nginx_reads_certbots_links_instead_of_the_inventorys_files(tmp_path: pathlib.Path) -> None:
    ctx = acme_ctx(tmp_path)
    assert not manifest.TLS_CERT.applies_to(ctx) and not manifest.TLS_KEY.applies_to(ctx)
    assert manifest.RENEW_HOOK.applies_to(ctx) and manifest.ACME_CHALLENGES.applies(ctx)
    assert manifest.packages(ctx) == ["nginx", "certbot"]
    site = render("nginx/talentsphere.conf.j2", ctx)
    assert "ssl_certificate /etc/nginx/tls/acme.crt;" in site and "ssl_certificate_key /etc/nginx/tls/acme.key;" in site


def test_without_an_acme_ca_nothing_of_certbot_is_managed(tmp_path: pathlib.Path) -> None:
    ctx = build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"})), "lb1")
    assert manifest.TLS_CERT.applies_to(ctx) and manifest.packages(ctx) == ["nginx"]
    assert not any(item.applies_to(ctx) for item in (manifest.RENEW_HOOK, manifest.ACME_CA, manifest.CERTBOT_ENV))
    assert "acme-challenge" not in render("nginx/talentsphere.conf.j2", ctx)


def test_a_private_acme_servers_ca_reaches_certbots_renewals(tmp_path: pathlib.Path) -> None:
    (tmp_path / "acme-ca.pem").write_text("-----BEGIN TEST-----\n")
    public = acme_ctx(tmp_path / "public")
    assert not manifest.CERTBOT_ENV.applies_to(public) and not manifest.ACME_CA.applies_to(public)
    ctx = acme_ctx(tmp_path / "private", nginx_acme_ca_file=str(tmp_path / "acme-ca.pem"))
    assert manifest.ACME_CA.applies_to(ctx) and manifest.ACME_CA.dest(ctx) == "/etc/letsencrypt/talentsphere-acme-ca.pem"
    dropin = render("nginx/certbot.service.conf.j2", ctx)
    assert MANAGED_MARKER in dropin.splitlines()[0]
    assert "Environment=REQUESTS_CA_BUNDLE=/etc/letsencrypt/talentsphere-acme-ca.pem" in dropin.splitlines()


def test_the_renewal_hook_reloads_nginx_only_with_a_valid_configuration(tmp_path: pathlib.Path) -> None:
    hook = render("nginx/acme-reload-nginx.sh.j2", acme_ctx(tmp_path))
    lines = hook.splitlines()
    assert lines[0] == "#!/bin/sh" and MANAGED_MARKER in lines[1]
    assert lines[-3:] == ["set -e", "nginx -t -q", "systemctl reload nginx"]
    assert subprocess.run(["sh", "-n"], input=hook, text=True).returncode == 0


@pytest.mark.parametrize(("output", "expected"), [
    (["none"], None),
    (["https://acme.example.test/directory", "DNS:jobs.example.test"],
     {"server": "https://acme.example.test/directory", "names": ["jobs.example.test"]}),
    (["https://acme.example.test/directory", "DNS:b.example.test", "DNS:a.example.test"],
     {"server": "https://acme.example.test/directory", "names": ["a.example.test", "b.example.test"]}),
])
def test_the_certificate_fact_reads_the_lineages_server_and_names(output: list[str], expected: dict | None) -> None:
    assert AcmeCertificate().process(output) == expected


# The port-80 site, served by a real nginx ---------------------------------------------------------------------
@pytest.fixture
def http_site(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path]]:
    """The ACME site's port-80 server on a loopback port; (its URL, the challenge directory)."""
    ctx = acme_ctx(tmp_path / "inventory")
    webroot, tls, http_port = tmp_path / "webroot", tmp_path / "tls", free_port()
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    self_signed(tls, "acme", "jobs.example.test")
    site = on_loopback(render("nginx/talentsphere.conf.j2", ctx), tls, http_port, free_port())
    # Workers as root: the challenge files lie in pytest's private (0700) temp directory.
    with nginx_serving(tmp_path, site.replace(ctx["nginx"]["acme_webroot"], str(webroot)), http_port,
                       main_block="user root;\n"):
        yield f"http://127.0.0.1:{http_port}", webroot / ".well-known" / "acme-challenge"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return None


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.build_opener(_NoRedirect).open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_http_site_serves_the_challenge_certbot_wrote_and_redirects_the_rest(http_site) -> None:  # noqa: ANN001
    url, challenges = http_site
    (challenges / "Xq3-token_1").write_text("Xq3-token_1.thumbprint")
    status, headers, body = _get(f"{url}/.well-known/acme-challenge/Xq3-token_1")
    assert (status, body) == (200, b"Xq3-token_1.thumbprint") and headers["Content-Type"] == "text/plain"
    assert _get(f"{url}/.well-known/acme-challenge/missing")[0] == 404
    status, headers, _ = _get(f"{url}/api/jobs?q=x")
    assert status == 301 and headers["Location"] == "https://127.0.0.1/api/jobs?q=x"


# The monitor host's probe of the site ---------------------------------------------------------------------------
def _monitor_ctx(tmp_path: pathlib.Path, settings: dict) -> dict:
    """The split lab's monitor host with `settings` added to the inventory."""
    import yaml
    from test_rendering_golden import _lab_inventory
    tmp_path.mkdir(parents=True)
    inventory = _lab_inventory(tmp_path, "split")
    if settings:
        settings = {"nginx_server_name": "jobs.example.test", **settings}
        (inventory / "group_vars" / "all" / "zz-acme.yml").write_text(yaml.safe_dump(settings))
    return build_context(load(inventory), "monitor1")


def test_the_site_probe_trusts_the_ca_the_sites_certificate_chains_to(tmp_path: pathlib.Path) -> None:
    from roles.monitor import manifest as monitor_manifest
    from roles.common.context import CA_CERT_PATH
    assert _monitor_ctx(tmp_path / "files", {})["monitor"]["ca_file"] == CA_CERT_PATH
    public = _monitor_ctx(tmp_path / "public", ACME)
    assert public["monitor"]["ca_file"] is None and "ca_file" not in render("monitor/blackbox.yml.j2", public)
    assert not monitor_manifest.SITE_ACME_CA.applies_to(public)
    bundle = tmp_path / "acme-ca.pem"
    bundle.write_text("-----BEGIN TEST-----\n")
    private = _monitor_ctx(tmp_path / "private", {**ACME, "nginx_acme_ca_file": str(bundle)})
    assert monitor_manifest.SITE_ACME_CA.applies_to(private)
    assert "ca_file: /etc/prometheus/site-acme-ca.pem" in render("monitor/blackbox.yml.j2", private)
