"""The nginx role's templates, rendered through the one context builder from a tiny inventory in tmp."""

from __future__ import annotations

import pathlib
import re

import pytest

from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

from test_inventory import problems_of, write_inventory as write_validated_inventory  # validated, with a vault
from test_templates_app import write_inventory  # the same tiny inventory the app templates use


@pytest.fixture
def ctx(tmp_path: pathlib.Path) -> dict:
    inventory = load(write_inventory(tmp_path, {"app1": "198.18.9.20", "app2": "198.18.9.21"},
                                     {"app_port": 8100}))
    return build_context(inventory, "lb1")


@pytest.fixture
def site(ctx) -> str:
    return render("nginx/talentsphere.conf.j2", ctx)


def directives(text: str, name: str) -> list[str]:
    """Arguments of every `name ...;` directive in an nginx config."""
    # Quoted strings may hold ';' (CSP, HSTS); a '{' means a block, not a directive.
    pattern = rf'^\s*{re.escape(name)}\s+((?:"[^"]*"|[^;{{"])*);'
    return [match.strip() for match in re.findall(pattern, text, re.MULTILINE)]


@pytest.mark.parametrize("template", ["nginx.conf.j2", "talentsphere.conf.j2"])
def test_every_nginx_template_starts_with_the_managed_header(ctx, template):
    assert MANAGED_MARKER in render(f"nginx/{template}", ctx).splitlines()[0]


def test_upstream_lists_every_app_host_on_its_private_address_and_app_port(site):
    servers = [argument.split()[0] for argument in directives(site, "server")]
    assert servers == ["198.18.9.20:8100", "198.18.9.21:8100"]


def test_nginx_conf_hides_the_version_and_runs_workers_as_www_data(ctx):
    conf = render("nginx/nginx.conf.j2", ctx)
    assert directives(conf, "server_tokens") == ["off"]
    assert directives(conf, "user") == ["www-data"]


def test_tls_allows_only_version_1_2_and_newer(ctx):
    assert directives(render("nginx/nginx.conf.j2", ctx), "ssl_protocols") == ["TLSv1.2 TLSv1.3"]


def test_site_uses_the_uploaded_certificate_and_key(site):
    assert directives(site, "ssl_certificate") == ["/etc/nginx/tls/talentsphere.crt"]
    assert directives(site, "ssl_certificate_key") == ["/etc/nginx/tls/talentsphere.key"]


@pytest.mark.parametrize("header, value", [
    ("Strict-Transport-Security", '"max-age=31536000; includeSubDomains"'),
    ("X-Frame-Options", '"DENY"'),
    ("X-Content-Type-Options", '"nosniff"'),
    ("Content-Security-Policy", "\"default-src 'none'; frame-ancestors 'none'; base-uri 'none'\""),
    ("X-XSS-Protection", '"0"'),
])
def test_site_sends_the_baseline_security_headers_on_every_response(site, header, value):
    assert f"{header} {value} always" in directives(site, "add_header")


def test_api_is_rate_limited(site):
    assert re.search(r"location /api/ \{\s*limit_req zone=talentsphere_api burst=40 nodelay;", site)
    assert "rate=20r/s" in directives(site, "limit_req_zone")[0]


def test_request_size_and_timeouts_are_limited(ctx):
    conf = render("nginx/nginx.conf.j2", ctx)
    assert directives(conf, "client_max_body_size") == ["1m"]
    assert directives(conf, "client_body_timeout") == ["10"]


def test_proxy_passes_the_client_address_and_scheme(site):
    headers = directives(site, "proxy_set_header")
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in headers
    assert "X-Forwarded-Proto $scheme" in headers


def test_server_name_comes_from_the_inventory(site):
    assert directives(site, "server_name") == ["jobs.example.test", "jobs.example.test"]


def metrics_location(site: str) -> list[str]:
    """The directives of the exact-match `location = /metrics` block, in order."""
    block = re.search(r"^\s*location = /metrics \{(?P<body>[^}]*)\}", site, re.MULTILINE)
    assert block, "the site has no `location = /metrics` block"
    return [line.strip() for line in block.group("body").strip().splitlines()]


def test_metrics_are_refused_to_every_client_by_default(site):
    assert metrics_location(site) == ["deny all;", "proxy_pass http://talentsphere_app;"]


def test_metrics_are_served_only_to_the_allowed_networks_listed_before_deny_all(tmp_path: pathlib.Path):
    inventory = load(write_inventory(tmp_path, {"app1": "198.18.9.20"},
                                     {"nginx_metrics_allow": ["10.20.0.0/24", "2001:db8::/48"]}))
    site = render("nginx/talentsphere.conf.j2", build_context(inventory, "lb1"))
    assert metrics_location(site) == ["allow 10.20.0.0/24;", "allow 2001:db8::/48;", "deny all;",
                                      "proxy_pass http://talentsphere_app;"]


def test_nginx_closes_idle_upstream_connections_before_gunicorn_does(tmp_path: pathlib.Path) -> None:
    # Gunicorn's gthread workers close an idle kept-alive connection after app_keepalive seconds; if nginx kept
    # it longer, a request could be sent on a connection being closed (a 502 for a POST, never retried).
    inventory = load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {"app_keepalive": 7}))
    upstream = render("nginx/talentsphere.conf.j2", build_context(inventory, "lb1")).split("upstream talentsphere_app {")[1]
    upstream = upstream.split("}")[0]
    assert directives(upstream, "keepalive_timeout") == ["6s"]


def test_login_and_registration_get_their_own_zone_per_client_address(site):
    zones = directives(site, "limit_req_zone")
    assert "$binary_remote_addr zone=talentsphere_auth:10m rate=5r/m" in zones
    auth = re.search(r"location /api/auth/ \{(?P<body>[^}]*)\}", site).group("body")
    assert directives(auth, "limit_req") == ["zone=talentsphere_api burst=40 nodelay",
                                             "zone=talentsphere_auth burst=5 nodelay"]


@pytest.mark.parametrize("variable, value, fix", [
    ("nginx_auth_rate", "5/min", "e.g. 20r/s or 5r/m"),
    ("nginx_auth_rate", "0r/m", "a whole number above 0"),
    ("nginx_api_rate", 20, "e.g. 20r/s or 5r/m"),
    ("nginx_auth_burst", -1, "set a whole number between 0 and 1000000"),
    ("nginx_auth_burst", "5", "set a whole number >= 0"),
])
def test_a_bad_rate_or_burst_is_refused_before_any_host_naming_the_variable(tmp_path, variable, value, fix):
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={variable: value}))
    assert len(problems) == 1 and problems[0].startswith(f"lb1: {variable} = {value!r} (")
    assert fix in problems[0]
