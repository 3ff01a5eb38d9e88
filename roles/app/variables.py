"""The app role's variables: Gunicorn, the SQLAlchemy pool, releases, seeding, and what it reads of its peers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

from roles.common.variables import TLS_CA_CERT_FILE
from roles.postgres.variables import (POSTGRESQL_APP_PASSWORD, POSTGRESQL_APP_PASSWORD_FALLBACK, POSTGRESQL_APP_USER,
                                     POSTGRESQL_DB_NAME, POSTGRESQL_OWNER_PASSWORD, POSTGRESQL_OWNER_USER)
from roles.redis.variables import REDIS_APP_PASSWORD, REDIS_APP_USER, REDIS_KEY_PREFIX

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

APP_PORT = Variable("app_port", 8000,
                    "Gunicorn listens on the host's private address and this port (nftables: lb hosts only)",
                    checks.integer(1, 65535))

VARIABLES: tuple[Variable, ...] = (
    APP_PORT,
    Variable("app_workers", 0, "Gunicorn worker processes; 0 means 2 x host_cpus + 1 (Gunicorn's recommendation)",
             checks.integer(0, 256)),
    # N > 1 runs the gthread worker: it serves other requests while one waits on PostgreSQL or Redis, and it keeps
    # nginx's upstream connections alive (a sync worker closes each one after its response). Each thread may hold
    # one pooled connection, so N <= app_db_pool_size + app_db_max_overflow and PostgreSQL's max_connections
    # (sized from the pool) does not grow. The default comes from the bench (roles/app/README.md).
    Variable("app_threads", 4, "Gunicorn threads per worker: 1 = sync worker, N > 1 = gthread with N threads",
             checks.integer(1, 32)),
    # PostgreSQL's max_connections is sized from these (app hosts x workers x (pool + overflow) + headroom).
    Variable("app_db_pool_size", 5, "SQLAlchemy pool_size per worker", checks.integer(1, 1000)),
    Variable("app_db_max_overflow", 5, "SQLAlchemy max_overflow per worker", checks.integer(0, 1000)),
    Variable("app_db_pool_timeout", 30, "seconds a request waits for a pooled connection", checks.integer(1, 3600)),
    Variable("app_db_pool_recycle", 1800, "seconds after which a pooled connection is replaced",
             checks.integer(1, 86400)),
    # A dead database must cost a fast 503, not a held worker (app/README.md, "Database outage").
    Variable("app_db_connect_timeout", 2, "seconds to connect to PostgreSQL before giving up (libpq: 2 or more)",
             checks.integer(2, 60)),
    Variable("app_db_statement_timeout", 5.0, "seconds a web request's statement may run (0 = no limit)",
             checks.number),
    Variable("app_db_breaker_cooldown", 0.5,
             "while PostgreSQL is unreachable, seconds between background reconnection attempts (0 = no breaker)",
             checks.number),
    Variable("app_slow_query_threshold", 0.5,
             "statements slower than this (seconds) are logged by the app and by PostgreSQL", checks.number),
    Variable("app_secret_key", REQUIRED, "Flask's SECRET_KEY, from the vault (signs tokens)", checks.secret(),
             secret=True),
    Variable("app_secret_key_fallback", "",
             "one more key the app accepts tokens of but never signs with (SECRET_KEY_FALLBACKS): set by "
             "`tsdeploy rotate-secrets --only app_secret_key`, from the vault; empty: none",
             checks.optional_secret, secret=True),
    Variable("app_releases_keep", 3, "releases kept under /opt/talentsphere/releases (the current one always is)",
             checks.integer(1, 100)),
    Variable("app_seed_jobs", 0, "jobs seeded once while the jobs table is empty (the lab sets 2000); 0 seeds none"),
    Variable("app_seed", 42, "random seed of the demo data"),
    Variable("app_timeout", 30, "Gunicorn worker timeout (seconds)"),
    Variable("app_graceful_timeout", 30, "Gunicorn graceful shutdown (seconds)"),
    Variable("app_keepalive", 5, "Gunicorn keep-alive (seconds); nginx closes idle upstream connections 1 s sooner"),
    # Recycling by count re-imports the app in every new worker (~0.6 s of CPU): at 1000 it replaced every worker
    # within seconds under load. Memory is what recycling protects, so that is what triggers it by default.
    Variable("app_max_requests", 0, "requests after which Gunicorn recycles a worker (0 = never by count)",
             checks.integer(0)),
    Variable("app_max_requests_jitter", 100, "random spread of app_max_requests, so workers do not recycle together",
             checks.integer(0)),
    Variable("app_worker_max_memory", "256MiB",
             "a worker whose private memory (RSS minus shared pages) exceeds this finishes its requests and is "
             "replaced (0 = never)", checks.size_or_zero),
    # Off by default: without recycling the import cost is paid once per worker at start, and without preload a
    # HUP (the rolling deploy's code switch) loads the new release in fresh workers; with it, a code change
    # needs a restart, which the rolling deploy then does.
    Variable("app_preload", False, "import the app once in Gunicorn's master before forking the workers",
             checks.boolean),
    # Off by default: the lb's nginx writes one JSON line per request with the app host, status and upstream time
    # (docs/logs.md); Gunicorn's line would repeat it through the journal, whose per-service rate limit
    # (10,000 lines per 30 s) drops lines at the rates the app serves anyway.
    Variable("app_access_log", False, "Gunicorn writes an access line per request to the journal",
             checks.boolean),
    Variable("app_limit_request_line", 4094, "Gunicorn's request-line limit (bytes)"),
    Variable("app_limit_request_fields", 100, "Gunicorn's header count limit"),
    Variable("app_limit_request_field_size", 8190, "Gunicorn's header size limit (bytes)"),
    Variable("app_proxy_count", 1, "trusted proxies in front of Gunicorn (ProxyFix): 1 = the lb's nginx"),
    Variable("app_ready_timeout", 60, "seconds the deploy waits for /health/ready after (re)starting Gunicorn"),
    # A rolling deploy takes this many app hosts out of the lb's rotation at a time (never all of them).
    Variable("app_serial", 1, "app hosts activated at a time by a rolling deploy (capped at the app hosts - 1)",
             checks.integer(1, 100)),
    # A migration waiting for a lock queues every query behind it: it gives up instead, and nothing changes.
    Variable("app_migration_lock_timeout", "5s", "how long a migration waits for a table lock (PostgreSQL duration)",
             checks.pg_duration),
    Variable("app_migration_statement_timeout", "15min", "how long one migration statement may run (0 = no limit)",
             checks.pg_duration),
    POSTGRESQL_DB_NAME,
    POSTGRESQL_APP_USER,
    POSTGRESQL_APP_PASSWORD,
    POSTGRESQL_APP_PASSWORD_FALLBACK,
    POSTGRESQL_OWNER_USER,
    POSTGRESQL_OWNER_PASSWORD,
    REDIS_APP_USER,
    REDIS_APP_PASSWORD,
    REDIS_KEY_PREFIX,
    TLS_CA_CERT_FILE,
)


def threads_problems(topology: Topology) -> list[str]:
    """app_threads above a worker's pool: each thread may hold one connection, an extra one would wait and fail.

    Only hosts whose three values passed their own checks are compared, so a bad value is reported once.
    """
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    names = ("app_threads", "app_db_pool_size", "app_db_max_overflow")
    problems = []
    for host in topology.hosts("app"):
        merged = topology.vars_of(host)
        if not all(passes(name, merged.get(name)) for name in names):
            continue
        threads, pool_size, max_overflow = (merged[name] for name in names)
        if threads <= pool_size + max_overflow:
            continue
        where = {name: origin(topology.inventory, host, name) for name in names}
        problems.append(
            f"{host}: app_threads = {threads} ({where['app_threads']}) exceeds app_db_pool_size + "
            f"app_db_max_overflow = {pool_size} ({where['app_db_pool_size']}) + {max_overflow} "
            f"({where['app_db_max_overflow']}) = {pool_size + max_overflow}: each thread may hold one pooled "
            "PostgreSQL connection, so a thread beyond the pool waits (up to app_db_pool_timeout, then its "
            "request fails) for another thread to give one back; fix: set app_threads to at most "
            f"{pool_size + max_overflow}, or raise app_db_max_overflow (PostgreSQL's max_connections grows with it)")
    return problems
