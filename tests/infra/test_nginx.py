"""lb hosts: nginx service, files, TLS (live handshakes from the control node) and the headers it sends.

HTTPS requests and TLS handshakes go from the control node to the lb host, as a client would connect.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import socket
import subprocess
import tempfile

import pytest

from roles.nginx.context import site_ca
from verifyhosts import Target

CLIENT_TIMEOUT = 15


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str


def _ca_file(lb: Target) -> str | None:
    """The CA that verifies the site's certificate: the inventory's (tls_ca_cert_file), or with an ACME CA its
    nginx_acme_ca_file (None: a public CA, the system's trust store). The control node's copy if readable, else
    the one the deploy installed."""
    nginx = lb.ctx["nginx"]
    local = site_ca(lb.topology.vars_of(lb.name))
    if nginx["acme"] and not local:
        return None
    installed = nginx["acme_ca_path"] if nginx["acme"] else lb.ctx["common"]["ca_cert_path"]
    if local and os.access(local, os.R_OK):
        return local
    return _installed_ca(lb.name, lb.sudo_check("cat %s", installed))


def _trust(lb: Target, option: str) -> list[str]:
    """`option` (curl's --cacert, openssl's -CAfile) and the CA file, or nothing: the system's trust store."""
    ca_file = _ca_file(lb)
    return [option, ca_file] if ca_file else []


@functools.cache
def _installed_ca(host: str, pem: str) -> str:
    directory = tempfile.mkdtemp(prefix=f"tsdeploy-verify-ca-{host}-")
    path = f"{directory}/ca.pem"
    with open(path, "w", encoding="ascii") as handle:
        handle.write(pem)
    return path


def _server_name(lb: Target) -> str:
    name = lb.ctx["nginx"]["server_name"]
    return lb.address if name in ("_", "") else name


def _https_get(lb: Target, path: str) -> Response:
    name = _server_name(lb)
    result = subprocess.run(
        ["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT), *_trust(lb, "--cacert"), "--resolve",
         f"{name}:443:{lb.address}", "-D", "-", f"https://{name}{path}"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{lb}: https://{name}{path} failed: {result.stderr.strip()}"
    # text mode already turned the CRLF line ends into "\n".
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    headers = {key.strip().lower(): value.strip() for key, _, value in (line.partition(":") for line in lines[1:])}
    return Response(int(lines[0].split()[1]), headers, body)


@pytest.fixture
def ready(lb: Target) -> Response:
    return _https_get(lb, "/health/ready")


def _handshake(lb: Target, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "s_client", "-connect", f"{lb.address}:443", "-servername", _server_name(lb),
                           *options], input="", capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=False)


def _nginx_config(lb: Target) -> str:
    return lb.sudo_check("nginx -T -q")


def _source_address(destination: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address this control node sends from toward `destination`: what nginx's allow/deny sees (no NAT)."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((destination, 443))  # a UDP connect sends nothing; the kernel only picks the route
        return ipaddress.ip_address(probe.getsockname()[0])


@pytest.mark.control("ts-nginx-01")
def test_nginx_is_enabled_and_running(lb: Target) -> None:
    assert (problem := lb.service_problem("nginx")) is None, problem


@pytest.mark.control("nginx-01")
def test_nginx_workers_run_as_www_data(lb: Target) -> None:
    workers = [proc for proc in lb.host.process.filter(comm="nginx") if "worker process" in proc.args]
    assert workers and {proc.user for proc in workers} == {"www-data"}, (
        f"{lb}: nginx workers run as {sorted({proc.user for proc in workers}) or 'nothing'}")


@pytest.mark.control("nginx-02")
def test_nginx_conf_is_root_owned_and_not_readable_by_others(lb: Target) -> None:
    owner, group, mode = lb.sudo_check("stat -c '%%U %%G %%a' %s", "/etc/nginx/nginx.conf").split()
    assert (owner, group) == ("root", "root") and int(mode[-1]) == 0, f"{lb}: nginx.conf {owner}:{group} {mode}"


@pytest.mark.control("nginx-03")
@pytest.mark.parametrize("path", ["/etc/nginx/sites-enabled/default", "/etc/nginx/conf.d/default.conf"])
def test_default_site_is_removed(lb: Target, path: str) -> None:
    assert not lb.host.file(path).exists, f"{lb}: {path} exists"


@pytest.mark.control("nginx-05")
def test_server_header_carries_no_version(lb: Target, ready: Response) -> None:
    assert ready.headers.get("server") == "nginx", f"{lb}: Server: {ready.headers.get('server')}"


@pytest.mark.control("nginx-06")
@pytest.mark.parametrize("directive", ["client_max_body_size", "client_body_buffer_size",
                                       "client_header_buffer_size", "large_client_header_buffers"])
def test_request_size_limit_is_set(lb: Target, directive: str) -> None:
    assert re.search(rf"^\s*{directive}\s+\S+", _nginx_config(lb), re.M), f"{lb}: {directive} is not set"


@pytest.mark.control("nginx-07")
@pytest.mark.parametrize("directive", ["client_body_timeout", "client_header_timeout", "send_timeout",
                                       "keepalive_timeout"])
def test_timeout_is_set(lb: Target, directive: str) -> None:
    assert re.search(rf"^\s*{directive}\s+\S+", _nginx_config(lb), re.M), f"{lb}: {directive} is not set"


@pytest.mark.control("ts-nginx-05")
def test_health_ready_answers_200_through_the_lb_over_https(lb: Target, ready: Response) -> None:
    assert ready.status == 200, f"{lb}: /health/ready answered {ready.status}: {ready.body[:200]}"


@pytest.mark.control("ts-nginx-06")
def test_metrics_are_refused_through_the_lb_to_clients_outside_the_allow_list(lb: Target) -> None:
    source = _source_address(lb.address)
    allowed = [ipaddress.ip_network(entry) for entry in lb.ctx["nginx"]["metrics_allow"]]
    if any(source in network for network in allowed):
        pytest.skip(f"this control node ({source}) is in nginx_metrics_allow: the refusal shows only from outside")
    metrics = _https_get(lb, "/metrics")
    assert metrics.status == 403, (
        f"{lb}: /metrics answered {metrics.status} to {source}, which is not in nginx_metrics_allow "
        f"{[str(network) for network in allowed]}: {metrics.body[:200]}")


@pytest.mark.control("ts-nginx-06")
def test_metrics_location_allows_only_the_inventorys_networks_then_denies_all(lb: Target) -> None:
    block = re.search(r"location\s*=\s*/metrics\s*\{(?P<body>[^}]*)\}", _nginx_config(lb))
    assert block, f"{lb}: no `location = /metrics`: /metrics falls through to the public `location /`"
    rules = re.findall(r"^\s*(allow|deny)\s+([^;]+);", block.group("body"), re.M)
    expected = [("allow", entry) for entry in lb.ctx["nginx"]["metrics_allow"]] + [("deny", "all")]
    assert rules == expected, f"{lb}: /metrics access rules {rules}, want {expected} (nginx_metrics_allow)"


HEADERS = [
    pytest.param("x-frame-options", r"^(DENY|SAMEORIGIN)$", marks=pytest.mark.control("nginx-08"),
                 id="X-Frame-Options"),
    pytest.param("x-content-type-options", r"^nosniff$", marks=pytest.mark.control("nginx-10"),
                 id="X-Content-Type-Options"),
    pytest.param("strict-transport-security", r"max-age=\d{7,}", marks=pytest.mark.control("ts-nginx-03"),
                 id="Strict-Transport-Security"),
    pytest.param("content-security-policy", r"default-src", marks=pytest.mark.control("ts-nginx-03"),
                 id="Content-Security-Policy"),
]


@pytest.mark.parametrize(("header", "pattern"), HEADERS)
def test_response_carries_security_header(lb: Target, ready: Response, header: str, pattern: str) -> None:
    value = ready.headers.get(header)
    assert value is not None and re.search(pattern, value), f"{lb}: {header}: {value!r} (want /{pattern}/)"


@pytest.mark.control("nginx-09")
def test_x_xss_protection_is_zero_or_absent(lb: Target, ready: Response) -> None:
    assert ready.headers.get("x-xss-protection", "0") == "0", f"{lb}: X-XSS-Protection {ready.headers}"


@pytest.mark.control("ts-nginx-02")
def test_tls12_handshake_is_accepted_with_the_inventorys_ca(lb: Target) -> None:
    result = _handshake(lb, "-tls1_2", *(_trust(lb, "-CAfile") or ["-CApath", "/etc/ssl/certs"]),
                        "-verify_return_error")
    assert result.returncode == 0, f"{lb}: TLS 1.2 handshake failed: {result.stderr.strip()[-300:]}"


@pytest.mark.control("ts-nginx-02")
def test_tls11_handshake_is_refused(lb: Target) -> None:
    result = _handshake(lb, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    # The server must be the one refusing (alert 70), not the client failing to offer TLS 1.1.
    refused = "alert protocol version" in result.stdout + result.stderr
    assert refused and "BEGIN CERTIFICATE" not in result.stdout, (
        f"{lb}: TLS 1.1 was not refused by the server: {result.stderr.strip()[-300:]}")


@pytest.mark.control("ts-nginx-04")
def test_api_location_is_rate_limited(lb: Target) -> None:
    config = _nginx_config(lb)
    api = re.search(r"location\s+\^?~?\s*/api/?\s*\{(?P<body>[^}]*)\}", config)
    assert api and re.search(r"^\s*limit_req\s+zone=", api.group("body"), re.M), (
        f"{lb}: no limit_req in the /api/ location")


@pytest.mark.control("ts-nginx-07")
def test_auth_location_has_its_own_limit_per_client_address_at_the_inventorys_rate(lb: Target) -> None:
    config = _nginx_config(lb)
    zones = {name: (key, rate) for key, name, rate in
             re.findall(r"^\s*limit_req_zone\s+(\S+)\s+zone=(\w+):\S+\s+rate=(\S+?);", config, re.M)}
    auth = re.search(r"location\s+\^?~?\s*/api/auth/\s*\{(?P<body>[^}]*)\}", config)
    assert auth, f"{lb}: no /api/auth/ location: login and registration have only the API's limit"
    limits = re.findall(r"^\s*limit_req\s+zone=(\w+)", auth.group("body"), re.M)
    api = re.search(r"location\s+/api/\s*\{(?P<body>[^}]*)\}", config)
    api_zones = re.findall(r"^\s*limit_req\s+zone=(\w+)", api.group("body"), re.M) if api else []
    own = [zone for zone in limits if zone not in api_zones and zone in zones]
    assert own, f"{lb}: /api/auth/ applies only the zones {limits} (those of /api/: {api_zones})"
    key, rate = zones[own[0]]
    want = lb.ctx["nginx"]["auth_rate"]
    assert key == "$binary_remote_addr" and rate == want, (
        f"{lb}: /api/auth/'s zone {own[0]} counts {key} at {rate}, want $binary_remote_addr at {want} "
        "(nginx_auth_rate)")
