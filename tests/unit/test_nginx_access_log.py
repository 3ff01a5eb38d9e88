"""The lb's access log: one JSON object per request with nginx's and the app's times, proved with the real nginx
of this machine writing it (the role's log format from nginx.conf, the role's rendered site)."""

from __future__ import annotations

import json
import pathlib
import re
import time

import pytest

from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import render

from test_nginx_rate_limits import pytestmark as needs_nginx, serve
from test_templates_app import write_inventory

pytestmark = needs_nginx

KEYS = {"time", "remote_addr", "request_id", "method", "uri", "protocol", "status", "bytes_sent", "request_time",
        "upstream_addr", "upstream_status", "upstream_response_time", "user_agent"}


def log_directives(tmp_path: pathlib.Path, log: pathlib.Path) -> str:
    """The log_format and access_log directives of the role's nginx.conf, the log pointed at `log`."""
    (tmp_path / "conf-inventory").mkdir()
    ctx = build_context(load(write_inventory(tmp_path / "conf-inventory", {"app1": "198.18.9.20"}, {})), "lb1")
    conf = render("nginx/nginx.conf.j2", ctx)
    directives = re.search(r"^\s*log_format .*?;\n\s*access_log [^;]*;", conf, flags=re.M | re.S)
    assert directives, "nginx.conf has no log_format followed by its access_log"
    return directives.group(0).replace("/var/log/nginx/access.log", str(log))


def entries(log: pathlib.Path, count: int) -> list[dict]:
    """The log's lines parsed as JSON, once nginx has written `count` of them."""
    deadline = time.monotonic() + 5
    while len(lines := log.read_text().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [json.loads(line) for line in lines]


@pytest.fixture
def logged(tmp_path: pathlib.Path):
    log = tmp_path / "access.log"
    for site in serve(tmp_path, {"nginx_auth_rate": "1r/m", "nginx_auth_burst": 1},
                      http_block=log_directives(tmp_path, log)):
        yield site, log


def test_each_proxied_request_is_one_json_object_with_nginxs_and_the_apps_times(logged) -> None:
    site, log = logged
    assert site.request("GET", '/api/jobs?q="dev\\ops"&page=2')[0] == 200
    (entry,) = entries(log, 1)
    assert set(entry) == KEYS
    assert (entry["method"], entry["uri"], entry["status"]) == ("GET", '/api/jobs?q="dev\\ops"&page=2', 200)
    assert entry["upstream_status"] == "200" and re.fullmatch(r"127\.0\.0\.1:\d+", entry["upstream_addr"])
    assert isinstance(entry["request_time"], float) and float(entry["upstream_response_time"]) >= 0
    assert isinstance(entry["bytes_sent"], int) and re.fullmatch(r"[0-9a-f]{32}", entry["request_id"])


def test_an_answer_nginx_gives_itself_is_logged_without_an_upstream_time(logged) -> None:
    site, log = logged
    statuses = site.statuses("POST", "/api/auth/login", 4)
    assert 429 in statuses
    limited = [entry for entry in entries(log, 4) if entry["status"] == 429]
    assert limited and all((entry["upstream_addr"], entry["upstream_response_time"]) == ("", "")
                           for entry in limited)


def test_no_token_or_body_reaches_the_log(logged) -> None:
    site, log = logged
    site.request("POST", "/api/auth/login")
    text = log.read_text() if entries(log, 1) else ""
    assert "a@example.test" not in text and "password" not in text
