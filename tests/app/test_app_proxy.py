"""Behind nginx: ProxyFix trusts exactly PROXY_COUNT hops of X-Forwarded-*, and nothing when it is 0.

No production endpoint exposes the client address or scheme, so each test builds its own app and registers
a test-only route on that instance which echoes what Flask sees (``remote_addr``, ``scheme``, ``host`` and
an external URL built by ``url_for``). That checks the middleware wiring in ``create_app``, which is what
the configuration promises; the session's shared app is left untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from app_helpers import app_config
from flask import Flask, request, url_for

from talentsphere import create_app
from talentsphere.config import ConfigError, load_config

# nginx runs on the same host as Gunicorn in the deploy, so the socket peer is the loopback address.
NGINX_ADDRESS = "127.0.0.1"
CLIENT = "203.0.113.7"
SPOOFED = "198.51.100.1"


def _app_seeing_the_request(app_env: dict[str, str], proxy_count: int) -> Flask:
    """An app with ``proxy_count`` trusted proxies and a test-only route echoing Flask's view of the request."""
    app = create_app(app_config(app_env, PROXY_COUNT=proxy_count))

    @app.get("/test-only/seen-request")
    def seen_request() -> dict[str, Any]:
        return {"remote_addr": request.remote_addr, "scheme": request.scheme, "host": request.host,
                "external_url": url_for("seen_request", _external=True)}

    return app


@pytest.fixture
def seen(app_env: dict[str, str]) -> Iterator[Callable[[int, dict[str, str]], dict[str, Any]]]:
    """``seen(proxy_count, headers)`` -> what the app saw of a request nginx forwarded with ``headers``."""
    built: list[Flask] = []

    def send(proxy_count: int, headers: dict[str, str]) -> dict[str, Any]:
        app = _app_seeing_the_request(app_env, proxy_count)
        built.append(app)
        response = app.test_client().get("/test-only/seen-request", headers=headers,
                                          environ_base={"REMOTE_ADDR": NGINX_ADDRESS})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    yield send
    for app in built:
        app.extensions["talentsphere.db"].engine.dispose()


def _forwarded(chain: str) -> dict[str, str]:
    """The headers nginx sends for an https request to jobs.example.com whose X-Forwarded-For is ``chain``."""
    return {"Host": "app.internal:8000", "X-Forwarded-For": chain, "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "jobs.example.com"}


def test_one_trusted_proxy_makes_the_forwarded_client_address_and_scheme_the_requests_own(seen) -> None:  # noqa: ANN001
    view = seen(1, _forwarded(CLIENT))
    assert view["remote_addr"] == CLIENT
    assert view["scheme"] == "https"
    assert view["host"] == "jobs.example.com"


def test_urls_the_app_builds_for_clients_use_the_forwarded_scheme_and_host(seen) -> None:  # noqa: ANN001
    view = seen(1, _forwarded(CLIENT))
    assert view["external_url"] == "https://jobs.example.com/test-only/seen-request"


def test_with_a_spoofed_chain_only_the_hop_nginx_appended_is_trusted(seen) -> None:  # noqa: ANN001
    # The client sent "X-Forwarded-For: 198.51.100.1"; nginx appended the address it really saw.
    view = seen(1, _forwarded(f"{SPOOFED}, {CLIENT}"))
    assert view["remote_addr"] == CLIENT


def test_with_proxy_count_zero_forwarded_headers_are_ignored(seen) -> None:  # noqa: ANN001
    view = seen(0, _forwarded(f"{SPOOFED}, {CLIENT}"))
    assert view["remote_addr"] == NGINX_ADDRESS
    assert view["scheme"] == "http"
    assert view["host"] == "app.internal:8000"
    assert view["external_url"] == "http://app.internal:8000/test-only/seen-request"


@pytest.mark.parametrize("value, reason", [("-1", "must not be negative"), ("one", "is not an integer"),
                                           ("1.5", "is not an integer"), ("", "is not an integer")])
def test_proxy_count_must_be_a_whole_non_negative_number_and_the_error_names_it(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"PROXY_COUNT={value!r} {reason}"):
        load_config({"FLASK_ENV": "development", "PROXY_COUNT": value})
