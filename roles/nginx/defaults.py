"""The nginx role's public variables and their defaults (data only; README.md explains each one)."""

DEFAULTS: dict[str, object] = {
    # Server name in the TLS server block (the lab sets the lb's address).
    "nginx_server_name": "_",
    "nginx_worker_connections": 1024,
    # The API takes JSON bodies; the app refuses anything above 64 KiB (MAX_CONTENT_LENGTH), nginx at 1 MiB.
    "nginx_client_max_body_size": "1m",
    "nginx_client_body_buffer_size": "64k",
    "nginx_client_header_buffer_size": "1k",
    "nginx_large_client_header_buffers": "4 8k",
    # Timeouts (seconds) for slow clients and for the app upstream.
    "nginx_client_body_timeout": 10,
    "nginx_client_header_timeout": 10,
    "nginx_send_timeout": 10,
    "nginx_keepalive_timeout": 15,
    "nginx_proxy_connect_timeout": 5,
    "nginx_proxy_read_timeout": 35,
    # limit_req on /api: steady rate per client address and the burst allowed above it.
    "nginx_api_rate": "20r/s",
    "nginx_api_burst": 40,
    # Client networks that may read the app's /metrics through the lb; empty = nobody (403 for everyone).
    "nginx_metrics_allow": [],
    # Strict-Transport-Security max-age (seconds): one year.
    "nginx_hsts_max_age": 31536000,
    "nginx_content_security_policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}
