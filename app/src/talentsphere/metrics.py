"""Prometheus metrics, defined once per process and exposed at /metrics.

Under Gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR (an empty, writable directory) so the
exposition aggregates every worker; without it each worker reports only its own figures.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess,
)

REQUESTS = Counter("talentsphere_http_requests_total", "HTTP requests served",
                   ["method", "endpoint", "status"])
LATENCY = Histogram("talentsphere_http_request_duration_seconds", "HTTP request latency", ["endpoint"])
CACHE_HITS = Counter("talentsphere_cache_hits_total", "Cache lookups answered by Redis", ["namespace"])
CACHE_MISSES = Counter("talentsphere_cache_misses_total", "Cache lookups that went to PostgreSQL",
                       ["namespace"])
CACHE_ERRORS = Counter("talentsphere_cache_errors_total", "Redis operations that failed or were skipped "
                       "by the open circuit breaker")
SLOW_QUERIES = Counter("talentsphere_slow_queries_total", "SQL statements slower than SLOW_QUERY_THRESHOLD")
DB_STATEMENTS = Counter("talentsphere_db_statements_total", "SQL statements executed")
POOL_CHECKED_OUT = Gauge("talentsphere_db_pool_checked_out", "Connections in use", multiprocess_mode="livesum")
POOL_SIZE = Gauge("talentsphere_db_pool_size", "Configured pool size", multiprocess_mode="max")
VIEWS_FLUSHED = Counter("talentsphere_views_flushed_total", "Job views written to PostgreSQL by flush-views")
# Incremented by the deploy's gunicorn.conf.py (post_worker_init): its rate is how often workers are replaced
# (recycling by count or memory, crashes, reloads), each replacement costing an import of the app.
WORKER_STARTS = Counter("talentsphere_gunicorn_worker_starts_total", "Gunicorn workers that finished booting")
AUTH_LOCKOUTS = Counter("talentsphere_auth_lockouts_total", "Lockouts started by a failed login (login_guard.py), "
                        "by what was locked: account or address", ["scope"])
AUTH_REFUSED = Counter("talentsphere_auth_refused_total", "Login and registration attempts answered 429 before any "
                       "password hashing, by reason: account, address (locked) or rate", ["reason"])


def exposition() -> tuple[bytes, str]:
    """Render the metrics in the Prometheus text format (aggregated across workers when configured)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
