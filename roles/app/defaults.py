"""The app role's public variables and their defaults (data only; README.md explains each one)."""

DEFAULTS: dict[str, object] = {
    # Gunicorn listens on the host's private address and this port (nftables opens it to lb hosts only).
    "app_port": 8000,
    # Gunicorn worker processes; 0 means 2 x host_cpus + 1 (Gunicorn's own recommendation).
    "app_workers": 0,
    # Gunicorn threads per worker. N > 1 runs the gthread worker, which serves other requests while one waits on
    # PostgreSQL or Redis; each thread may hold one pooled connection, so N <= app_db_pool_size +
    # app_db_max_overflow and PostgreSQL's max_connections (sized from the pool) does not grow. The default 1
    # keeps the sync worker every existing deploy runs, whose worker timeout also bounds each request.
    "app_threads": 1,
    # SQLAlchemy pool per worker; PostgreSQL's max_connections is sized from these (app hosts x workers x
    # (pool + overflow) + headroom), so keep them small.
    "app_db_pool_size": 5,
    "app_db_max_overflow": 5,
    "app_db_pool_timeout": 30,
    "app_db_pool_recycle": 1800,
    # Statements slower than this (seconds) are logged by the app and by PostgreSQL.
    "app_slow_query_threshold": 0.5,
    # Flask's SECRET_KEY (from the vault: app_secret_key: "{{ vault_app_secret_key }}"); required.
    "app_secret_key": "",
    # Releases kept under /opt/talentsphere/releases (the current one is always kept).
    "app_releases_keep": 3,
    # Jobs seeded once when the jobs table is empty (the lab sets 2000); 0 seeds nothing.
    "app_seed_jobs": 0,
    "app_seed": 42,
    # Gunicorn: request timeout, graceful shutdown, keep-alive (seconds), worker recycling.
    "app_timeout": 30,
    "app_graceful_timeout": 30,
    "app_keepalive": 5,
    "app_max_requests": 1000,
    "app_max_requests_jitter": 100,
    # Gunicorn request limits (bytes / header count); nginx enforces the same or tighter ones in front.
    "app_limit_request_line": 4094,
    "app_limit_request_fields": 100,
    "app_limit_request_field_size": 8190,
    # Trusted proxies in front of Gunicorn (ProxyFix): 1 = the lb's nginx.
    "app_proxy_count": 1,
    # Seconds the deploy waits for /health/ready after (re)starting or reloading Gunicorn.
    "app_ready_timeout": 60,
}
