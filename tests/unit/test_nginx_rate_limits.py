"""The lb's rate limits, proved with the real nginx of this machine serving the role's rendered site.

nginx runs from a temp dir with the site as the deploy renders it (only its listen addresses, TLS paths and
upstream are pointed at this test: loopback ports, a throwaway certificate and a tiny HTTP server standing in
for the app, which answers 200 to everything). Requests come from one address, as an attacker's would.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import render

from test_templates_app import write_inventory

pytestmark = pytest.mark.skipif(
    not shutil.which("nginx", path="/usr/sbin:/usr/bin") or not shutil.which("openssl") or os.geteuid() != 0,
    reason="needs root, nginx and openssl (apt-get install nginx-light openssl)")


class App(http.server.BaseHTTPRequestHandler):
    """Stands in for Gunicorn: 200 and a small JSON body for any request."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Site:
    """The role's site, served by a real nginx on a loopback port."""

    def __init__(self, port: int, cafile: pathlib.Path) -> None:
        self.url = f"https://127.0.0.1:{port}"
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.context.check_hostname = False

    def request(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        data = b'{"email": "a@example.test", "password": "x"}' if method == "POST" else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    def statuses(self, method: str, path: str, count: int) -> list[int]:
        return [self.request(method, path)[0] for _ in range(count)]


def on_loopback(site: str, tls: pathlib.Path, http_port: int, https_port: int) -> str:
    """The rendered site listening on loopback ports, its TLS pair read from `tls`."""
    site = site.replace("/etc/nginx/tls/", f"{tls}/")
    site = re.sub(r"^\s*listen \[::\].*\n", "", site, flags=re.M)
    site = site.replace("listen 80 default_server;", f"listen 127.0.0.1:{http_port} default_server;")
    return site.replace("listen 443 ssl default_server;", f"listen 127.0.0.1:{https_port} ssl default_server;")


def self_signed(tls: pathlib.Path, name: str, common_name: str) -> None:
    """A throwaway pair `tls`/<name>.crt and .key."""
    tls.mkdir(exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={common_name}", "-keyout", str(tls / f"{name}.key"),
                    "-out", str(tls / f"{name}.crt")], check=True, capture_output=True)


@contextlib.contextmanager
def nginx_serving(directory: pathlib.Path, site: str, port: int, http_block: str = "access_log off;",
                  main_block: str = "") -> Iterator[None]:
    """A real nginx running `site` with a stub nginx.conf in `directory`, until it listens on `port`."""
    (directory / "site.conf").write_text(site)
    (directory / "nginx.conf").write_text(
        f"{main_block}worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n    {http_block}\n    include /etc/nginx/mime.types;\n    include {directory}/site.conf;\n}}\n")
    nginx = subprocess.Popen(["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory),
                              "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert nginx.poll() is None, f"nginx exited: {nginx.stdout.read()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen within 10 s"
                time.sleep(0.1)
        yield
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


def serve(tmp_path: pathlib.Path, settings: dict, http_block: str = "access_log off;") -> Iterator[Site]:
    """The rendered site on loopback ports; `http_block` goes into the stub nginx.conf's http block."""
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    (tmp_path / "inventory").mkdir()
    ctx = build_context(load(write_inventory(tmp_path / "inventory", {"app1": "198.18.9.20"}, settings)), "lb1")
    tls, port = tmp_path / "tls", free_port()
    self_signed(tls, "talentsphere", "127.0.0.1")
    site = on_loopback(render("nginx/talentsphere.conf.j2", ctx), tls, free_port(), port)
    site = re.sub(r"^(\s*server) 198\.18\.9\.20:\d+", rf"\1 127.0.0.1:{app.server_address[1]}", site, flags=re.M)
    try:
        with nginx_serving(tmp_path, site, port, http_block):
            yield Site(port, tls / "talentsphere.crt")
    finally:
        app.shutdown()


@pytest.fixture
def site(tmp_path: pathlib.Path) -> Iterator[Site]:
    yield from serve(tmp_path, {})


def test_ten_rapid_logins_from_one_address_pass_until_the_burst_is_spent_then_get_429(site: Site) -> None:
    # nginx_auth_rate 5r/m, nginx_auth_burst 5: the first request and a burst of five, then refused.
    assert site.statuses("POST", "/api/auth/login", 10) == [200] * 6 + [429] * 4


def test_registration_shares_the_login_limit(site: Site) -> None:
    assert site.statuses("POST", "/api/auth/login", 6) == [200] * 6
    assert site.statuses("POST", "/api/auth/register", 2) == [429, 429]


def test_a_refused_request_gets_the_apis_json_error_and_the_security_headers(site: Site) -> None:
    site.statuses("POST", "/api/auth/login", 6)
    status, headers, body = site.request("POST", "/api/auth/login")
    assert status == 429 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert headers["x-frame-options"] == "DENY" and "max-age=" in headers["strict-transport-security"]


def test_the_rest_of_the_api_and_reading_the_current_account_keep_the_apis_limit(site: Site) -> None:
    site.statuses("POST", "/api/auth/login", 10)
    assert site.statuses("GET", "/api/auth/me", 20) == [200] * 20
    assert site.statuses("GET", "/api/jobs", 10) == [200] * 10


def test_the_auth_limit_follows_the_inventory(tmp_path: pathlib.Path) -> None:
    for site in serve(tmp_path, {"nginx_auth_rate": "2r/m", "nginx_auth_burst": 1}):
        assert site.statuses("POST", "/api/auth/login", 4) == [200, 200, 429, 429]
