"""The nginx role's variables: the site's name, client limits and timeouts, rate limits, headers, ACME."""

from __future__ import annotations

import re
from typing import Any

from typing import TYPE_CHECKING

from tsdeploy import checks
from tsdeploy.rolespec import Variable

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from roles.registry import Group

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

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

_ACME_DIRECTORY = re.compile(r"^https://[^\s/?#]+(/[^\s]*)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def acme_directory(value: Any) -> tuple[str, str] | None:
    """An ACME CA's directory URL (RFC 8555 section 7.1.1, always HTTPS), or "" for the certificate files."""
    if value == "" or (isinstance(value, str) and _ACME_DIRECTORY.match(value)):
        return None
    return ("is not an ACME directory URL",
            "give the CA's https:// directory URL (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory), "
            "or \"\" to serve the certificate files tls_cert_file and tls_key_file")


def optional_email(value: Any) -> tuple[str, str] | None:
    if value == "" or (isinstance(value, str) and _EMAIL.match(value)):
        return None
    return "is not an email address", "give the address the CA may write to about the certificate, or \"\" for none"


def optional_file(value: Any) -> tuple[str, str] | None:
    return None if value == "" else checks.local_file(value)



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
    Variable("nginx_acme_directory", "",
             "an ACME CA's directory URL: certbot obtains and renews the site's certificate for nginx_server_name "
             "(HTTP-01 through nginx on port 80); \"\": nginx serves tls_cert_file and tls_key_file",
             acme_directory),
    Variable("nginx_acme_email", "", "the ACME account's contact address (the CA's expiry notices); \"\": none",
             optional_email),
    Variable("nginx_acme_ca_file", "",
             "a CA bundle (PEM, on the control node) that certbot trusts for the ACME server's HTTPS: a private CA "
             "only; \"\": the system's trust store (public CAs such as Let's Encrypt)", optional_file, files=True),
    TLS_CA_CERT_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
)


def acme_problems(topology: Topology) -> list[str]:
    """An ACME CA issues certificates for DNS names it can reach on port 80: not for "_" or an IP address."""
    from roles.common.variables import is_address
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    problems = []
    for host in topology.hosts(Group.LB):
        v = topology.vars_of(host)
        directory, name = v.get("nginx_acme_directory", ""), v.get("nginx_server_name", "_")
        if not directory or not passes("nginx_acme_directory", directory) or not passes("nginx_server_name", name):
            continue
        if name == "_" or is_address(name):
            where = origin(topology.inventory, host, "nginx_server_name")
            problems.append(
                f"{host}: nginx_acme_directory is set, but nginx_server_name = {name!r} ({where}) is not a DNS name: "
                "an ACME CA issues certificates for names only; fix: set nginx_server_name to the site's public "
                "name (its DNS A/AAAA records pointing at this lb), or remove nginx_acme_directory")
    return problems
