"""The nginx role's variables: the site's name, client limits and timeouts, rate limit, headers."""

from __future__ import annotations

from typing import Any

from tsdeploy import checks
from tsdeploy.rolespec import Variable

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE

def server_name(value: Any) -> tuple[str, str] | None:
    """A DNS name, or nginx's catch-all "_" (the site answers any Host header)."""
    return None if value == "_" else checks.hostname(value)


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
    Variable("nginx_api_rate", "20r/s", "limit_req rate per client address on /api/"),
    Variable("nginx_api_burst", 40, "requests allowed above the rate before 429"),
    Variable("nginx_metrics_allow", [], "client networks that may read the app's /metrics through the lb; [] = nobody",
             checks.optional_cidr_list),
    Variable("nginx_hsts_max_age", 31536000, "Strict-Transport-Security max-age (seconds): one year"),
    Variable("nginx_content_security_policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
             "Content-Security-Policy of the JSON API"),
    TLS_CA_CERT_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)
