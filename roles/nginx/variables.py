"""The nginx role's variables: the site's name, client limits and timeouts, rate limits, headers."""

from __future__ import annotations

import re
from typing import Any

from tsdeploy import checks
from tsdeploy.rolespec import Variable

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE

def server_name(value: Any) -> tuple[str, str] | None:
    """A DNS name, or nginx's catch-all "_" (the site answers any Host header)."""
    return None if value == "_" else checks.hostname(value)


_RATE = re.compile(r"^([1-9][0-9]*)r/([sm])$")


def request_rate(value: Any) -> tuple[str, str] | None:
    """nginx's `limit_req_zone rate=`: a whole number of requests per second or per minute, e.g. 20r/s or 5r/m.

    nginx refuses anything else only when it reads the config on the host (`nginx -t` stops the deploy there);
    this names the variable before any host is touched.
    """
    if isinstance(value, str) and _RATE.match(value):
        return None
    return ("is not a request rate",
            "write requests per second or per minute as nginx's limit_req_zone takes them: e.g. 20r/s or 5r/m "
            "(a whole number above 0, then r/s or r/m)")


burst = checks.integer(0, 1_000_000)


VARIABLES: tuple[Variable, ...] = (
    Variable("nginx_server_name", "_", "server_name of the TLS site, or _ for any (the lab sets the lb's address)",
             server_name),
    Variable("nginx_worker_connections", 1024, "connections per nginx worker"),
    # The API takes JSON bodies; the app refuses anything above 64 KiB (MAX_CONTENT_LENGTH), nginx at 1 MiB.
    Variable("nginx_client_max_body_size", "1m", "largest request body"),
    Variable("nginx_client_body_buffer_size", "64k", "body buffer before spooling to disk"),
    Variable("nginx_client_header_buffer_size", "1k", "header buffer"),
    Variable("nginx_large_client_header_buffers", "4 8k", "buffers for long headers (tokens)"),
    Variable("nginx_client_body_timeout", 10, "seconds a client may take to send its body"),
    Variable("nginx_client_header_timeout", 10, "seconds a client may take to send its headers"),
    Variable("nginx_send_timeout", 10, "seconds between two writes to a client"),
    Variable("nginx_keepalive_timeout", 15, "idle client keep-alive (seconds)"),
    Variable("nginx_proxy_connect_timeout", 5, "seconds to connect to an app host"),
    Variable("nginx_proxy_read_timeout", 35, "seconds to wait for the app; above Gunicorn's timeout"),
    Variable("nginx_api_rate", "20r/s", "limit_req rate per client address on /api/", request_rate),
    Variable("nginx_api_burst", 40, "requests allowed above the rate before 429", burst),
    # Login and registration hash a password with scrypt (about 90 ms of CPU each): at the API's 20 r/s one
    # address could keep nearly two app CPUs busy, or try passwords at that pace. /api/auth/ gets its own, much
    # lower limit on top of the API's (GET /api/auth/me hashes nothing and keeps only the API's).
    Variable("nginx_auth_rate", "5r/m", "limit_req rate per client address on /api/auth/ (login, registration)",
             request_rate),
    Variable("nginx_auth_burst", 5, "requests to /api/auth/ allowed above nginx_auth_rate before 429", burst),
    Variable("nginx_metrics_allow", [], "client networks that may read the app's /metrics through the lb; [] = nobody",
             checks.optional_cidr_list),
    Variable("nginx_hsts_max_age", 31536000, "Strict-Transport-Security max-age (seconds): one year"),
    Variable("nginx_content_security_policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
             "Content-Security-Policy of the JSON API"),
    TLS_CA_CERT_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)
