"""The app role's context: Gunicorn's settings, the release layout, the EnvironmentFile, its peers' URLs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

from roles.app.demand import workers
from roles.common.context import CA_CERT_PATH
from roles.registry import Group
from tsdeploy.rolespec import Inbound
from tsdeploy.units import parse_size

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tsdeploy.topology import HostView

#: The app's system user, and where its releases, config and units live.
USER = "talentsphere"
BASE_DIR = "/opt/talentsphere"
CONFIG_DIR = "/etc/talentsphere"


class AppContext(TypedDict):
    """`ctx["app"]` on an app host."""

    port: int
    workers: int
    threads: int
    worker_class: str
    python_version: str
    database_url: str
    redis_url: str
    db_pool_size: int
    db_max_overflow: int
    db_pool_timeout: int
    db_pool_recycle: int
    db_connect_timeout: int
    db_statement_timeout: float
    db_breaker_cooldown: float
    slow_query_threshold: float
    secret_key: str
    cache_key_prefix: str
    releases_keep: int
    user: str
    base_dir: str
    releases_dir: str
    artifacts_dir: str
    current_dir: str
    config_dir: str
    env_file: str
    owner_env_file: str
    gunicorn_conf: str
    env: dict[str, str]
    owner_env: dict[str, str]
    bind: str
    ready_url: str
    ready_timeout: int
    serial: int
    migration_lock_timeout: str
    migration_statement_timeout: str
    forwarded_allow_ips: str
    ip_address_allow: list[str]
    timeout: int
    graceful_timeout: int
    keepalive: int
    max_requests: int
    max_requests_jitter: int
    worker_max_memory: int
    preload: bool
    access_log: bool
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    seed_jobs: int
    seed: int


def worker_class(threads: int) -> str:
    """Gunicorn's worker class for `threads` per worker: "sync" for one, "gthread" for more.

    Gunicorn would switch a sync worker with threads > 1 to gthread by itself; naming the class keeps the
    rendered file honest about what runs.

    >>> worker_class(1), worker_class(4)
    ('sync', 'gthread')
    """
    return "sync" if threads == 1 else "gthread"


def worker_max_memory(value: Any) -> int:
    """app_worker_max_memory in bytes; 0 = no limit.

    >>> worker_max_memory("256MiB"), worker_max_memory(0)
    (268435456, 0)
    """
    return 0 if value == 0 else parse_size(value)


def env_quote(value: Any) -> str:
    """A value for an EnvironmentFile line: double-quoted, with the characters systemd and sh unescape."""
    escaped = "".join(f"\\{char}" if char in '\\"`$' else char for char in str(value))
    return f'"{escaped}"'


def inbound(view: HostView) -> list[Inbound]:
    rules = [Inbound(int(view.vars["app_port"]), view.addresses(Group.LB), "Gunicorn from lb hosts")]
    if monitor := view.addresses(Group.MONITOR):
        rules.append(Inbound(int(view.vars["app_port"]), monitor, "the app's /metrics from the monitor host"))
    return rules


def _database_url(postgres: Mapping[str, Any], user: str, password: str,
                  via: Mapping[str, Any] | None = None) -> str:
    """The app's SQLAlchemy URL for `user` (TLS, the server's name checked against the lab or inventory CA):
    to PostgreSQL, or `via` a pooler's context (its address and port)."""
    address, port = (via["address"], via["port"]) if via else (postgres["address"], postgres["port"])
    return (f"postgresql+psycopg2://{quote(user, safe='')}:{quote(password, safe='')}@{address}:"
            f"{port}/{postgres['db_name']}?sslmode=verify-full&sslrootcert={CA_CERT_PATH}")


def derive(view: HostView) -> AppContext:
    v, host = view.vars, view.facts
    postgres, redis = view.service("postgres"), view.service("redis")
    redis_user, redis_password = quote(redis["app_user"], safe=""), quote(redis["app_password"], safe="")
    # The runtime role goes through the pooler when the inventory has one (the owner's migrations never do).
    pooler = view.service("pgbouncer") if view.topology.hosts(Group.POOLER) else None
    database_url = _database_url(postgres, postgres["app_user"], postgres["app_password"], via=pooler)
    # TLS only: redis-py verifies Redis's certificate against the inventory's CA and its name (the cache host's
    # private address is in the certificate's subjectAltName).
    redis_url = (f"rediss://{redis_user}:{redis_password}@{redis['address']}:{redis['port']}/0"
                 f"?ssl_ca_certs={CA_CERT_PATH}")
    threads, port = int(v["app_threads"]), int(v["app_port"])
    lb_hosts = sorted(set(view.addresses(Group.LB)))
    talks_to = {host["private_address"], *lb_hosts, *view.addresses(Group.DB), *view.addresses(Group.POOLER),
                *view.addresses(Group.CACHE),
                *view.addresses(Group.MONITOR)}
    env = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": v["app_secret_key"],
        "DB_POOL_SIZE": int(v["app_db_pool_size"]), "DB_MAX_OVERFLOW": int(v["app_db_max_overflow"]),
        "DB_POOL_TIMEOUT": int(v["app_db_pool_timeout"]), "DB_POOL_RECYCLE": int(v["app_db_pool_recycle"]),
        "DB_CONNECT_TIMEOUT": int(v["app_db_connect_timeout"]),
        "DB_STATEMENT_TIMEOUT": float(v["app_db_statement_timeout"]),
        "DB_BREAKER_COOLDOWN": float(v["app_db_breaker_cooldown"]),
        "SLOW_QUERY_THRESHOLD": float(v["app_slow_query_threshold"]), "CACHE_KEY_PREFIX": redis["key_prefix"],
        "PROXY_COUNT": int(v["app_proxy_count"]), "FLASK_ENV": "production",
    }
    if postgres["app_password_fallback"]:
        # Only while the runtime role's password is rotated: PostgreSQL holds one of the two at any time.
        env["DATABASE_PASSWORD_FALLBACK"] = postgres["app_password_fallback"]
    if v["app_secret_key_fallback"]:
        # Only while a key rotation is under way (or its previous key's tokens may still be alive).
        env["SECRET_KEY_FALLBACKS"] = v["app_secret_key_fallback"]
    return AppContext(
        port=port,
        workers=workers(v, host["cpus"]),
        threads=threads,
        worker_class=worker_class(threads),
        python_version=host["python_version"],
        database_url=database_url,
        redis_url=redis_url,
        db_pool_size=int(v["app_db_pool_size"]),
        db_max_overflow=int(v["app_db_max_overflow"]),
        db_pool_timeout=int(v["app_db_pool_timeout"]),
        db_pool_recycle=int(v["app_db_pool_recycle"]),
        db_connect_timeout=int(v["app_db_connect_timeout"]),
        db_statement_timeout=float(v["app_db_statement_timeout"]),
        db_breaker_cooldown=float(v["app_db_breaker_cooldown"]),
        slow_query_threshold=float(v["app_slow_query_threshold"]),
        secret_key=v["app_secret_key"],
        cache_key_prefix=redis["key_prefix"],
        releases_keep=int(v["app_releases_keep"]),
        user=USER,
        base_dir=BASE_DIR,
        releases_dir=f"{BASE_DIR}/releases",
        artifacts_dir=f"{BASE_DIR}/artifacts",
        current_dir=f"{BASE_DIR}/current",
        config_dir=CONFIG_DIR,
        env_file=f"{CONFIG_DIR}/env",
        owner_env_file=f"{CONFIG_DIR}/owner.env",
        gunicorn_conf=f"{CONFIG_DIR}/gunicorn.conf.py",
        env={name: env_quote(value) for name, value in env.items()},
        # Read after env_file by the deploy's migrate, optimize-db and seed only: the owner's URL wins there.
        owner_env={"DATABASE_URL": env_quote(_database_url(postgres, postgres["owner_user"],
                                                           postgres["owner_password"]))},
        bind=f"{host['private_address']}:{port}",
        ready_url=f"http://{host['private_address']}:{port}/health/ready",
        ready_timeout=int(v["app_ready_timeout"]),
        serial=int(v["app_serial"]),
        migration_lock_timeout=str(v["app_migration_lock_timeout"]),
        migration_statement_timeout=str(v["app_migration_statement_timeout"]),
        forwarded_allow_ips=",".join(lb_hosts) or "127.0.0.1",
        ip_address_allow=["localhost", *sorted(talks_to)],
        worker_max_memory=worker_max_memory(v["app_worker_max_memory"]),
        preload=bool(v["app_preload"]),
        access_log=bool(v["app_access_log"]),
        **{key: int(v[f"app_{key}"]) for key in (
            "timeout", "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter",
            "limit_request_line", "limit_request_fields", "limit_request_field_size", "seed_jobs", "seed")},
    )
