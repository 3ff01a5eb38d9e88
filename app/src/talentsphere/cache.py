"""Redis cache with a TTL per namespace, generation-counter invalidation and a circuit breaker.

Usage::

    from talentsphere.cache import cache, invalidate_cache
    invalidate_cache(['jobs_featured', 'job_search'])
    cache.clear_all()

Keys: ``{prefix}cache:{namespace}:{generation}:{digest}`` for entries and ``{prefix}gen:{namespace}`` for
generation counters. Invalidating a namespace increments its counter (O(1), no KEYS or SCAN on the write
path); the orphaned entries expire by their TTL. ``clear_all`` also deletes the entries with SCAN + UNLINK.
Every key carries CACHE_KEY_PREFIX because the app's Redis ACL user may touch nothing else.

If Redis fails or is slower than its socket timeout, the breaker opens for a cooldown and every lookup is a
miss served by PostgreSQL, so a dead Redis costs one timeout per cooldown, not one per request.

Entries are written with their TTL; generation counters and the hit/miss totals have none, so Redis must
evict only keys with a TTL (the deploy's ``volatile-lru``): an evicted counter would fall back to 0 and make
entries from before an invalidation current again. When nothing with a TTL is left to evict, Redis answers
writes with ``OOM``. A command Redis answers with an error fails alone: a refused cache write is a miss, a
refused INCR leaves the generation as it was (no entry is left to be stale: Redis refuses only after
evicting every key with a TTL), and the breaker stays closed because Redis is reachable and answered fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from flask import current_app
from werkzeug.local import LocalProxy

from . import metrics

log = logging.getLogger("talentsphere.cache")
T = TypeVar("T")

# How long each namespace's entries live, in seconds: an hour for categories, which almost never change, down to
# 5 minutes for search results, which every new job changes. Writes through the API also invalidate the
# namespaces they touch, so a TTL mainly bounds staleness from changes no endpoint makes (flushed view counts,
# data written to PostgreSQL directly).
TTLS: dict[str, int] = {
    "jobs_featured": 10 * 60,
    "job_categories": 60 * 60,
    "company_profile": 30 * 60,
    "employer_dashboard": 15 * 60,
    "job_search": 5 * 60,
}
# Hit/miss totals are also kept in Redis (for `talentsphere monitor`), written at most this often.
STATS_FLUSH_SECONDS = 5.0


class CircuitBreaker:
    """Opens after a Redis failure and stays open for ``cooldown`` seconds; then lets one call try again."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        """True while calls to Redis should be skipped."""
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        """Record a failure: skip Redis for the cooldown."""
        self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        """Record a success."""
        self._open_until = 0.0


class Cache:
    """A JSON cache in Redis that never raises: failures become misses."""

    def __init__(self, url: str, prefix: str, socket_timeout: float = 0.25, cooldown: float = 5.0) -> None:
        self.prefix = prefix
        # No client-side retries: redis-py retries 3 times with backoff by default, which would multiply the
        # cost of a dead Redis; the breaker below is the retry policy.
        self.client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=30,
        )
        self.breaker = CircuitBreaker(cooldown)
        self._lock = threading.Lock()
        self._pending = {"hits": 0, "misses": 0}
        self._last_stats_flush = time.monotonic()
        self._last_refusal_log = float("-inf")

    # Keys -----------------------------------------------------------------------------------------------
    def gen_key(self, namespace: str) -> str:
        """Key of a namespace's generation counter."""
        return f"{self.prefix}gen:{namespace}"

    def entry_key(self, namespace: str, generation: int, params: Any) -> str:
        """Key of one cached value: namespace, generation and a digest of the parameters."""
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:32]
        return f"{self.prefix}cache:{namespace}:{generation}:{digest}"

    @property
    def stats_key(self) -> str:
        """Hash holding the app-wide hit/miss totals."""
        return f"{self.prefix}stats:cache"

    # Guarded Redis access ---------------------------------------------------------------------------------
    def call(self, operation: Callable[[redis.Redis], T]) -> T | None:
        """Run ``operation`` unless the breaker is open; any Redis error returns None.

        A failure to reach Redis (connection error, timeout) trips the breaker; an error reply (OOM, NOPERM)
        does not, since Redis answered and its other commands still work.
        """
        if self.breaker.is_open:
            metrics.CACHE_ERRORS.inc()
            return None
        try:
            result = operation(self.client)
        except redis.ResponseError as exc:
            metrics.CACHE_ERRORS.inc()
            self._log_refusal(exc)
            return None
        except redis.RedisError as exc:
            metrics.CACHE_ERRORS.inc()
            self.breaker.trip()
            log.warning("redis unavailable (%s); serving from PostgreSQL for %.0fs", exc, self.breaker.cooldown)
            return None
        self.breaker.reset()
        return result

    def _log_refusal(self, exc: redis.ResponseError) -> None:
        # Under OOM every cache write and view is refused; one line per cooldown says so without a flood.
        now = time.monotonic()
        if now - self._last_refusal_log >= self.breaker.cooldown:
            self._last_refusal_log = now
            log.warning("redis refused a command (%s); cache writes are misses and views go to PostgreSQL "
                        "until it accepts them again", exc)

    @property
    def is_available(self) -> bool:
        """Ping Redis (through the breaker)."""
        return bool(self.call(lambda r: r.ping()))

    # Reads ----------------------------------------------------------------------------------------------
    def get_or_set(self, namespace: str, params: Any, producer: Callable[[], Any]) -> Any:
        """Return the cached value for ``(namespace, params)`` or compute, store (with the TTL) and return it.

        ``namespace`` is a TTLS name, optionally narrowed by ``:id`` (``company_profile:acme``) so that
        one company's or employer's entries can be invalidated alone.
        """
        ttl = TTLS[namespace.split(":", 1)[0]]
        generation = self.call(lambda r: r.get(self.gen_key(namespace)))
        key = self.entry_key(namespace, int(generation or 0), params)
        raw = self.call(lambda r: r.get(key))
        if raw is not None:
            self._count(namespace, hit=True)
            return json.loads(raw)
        self._count(namespace, hit=False)
        value = producer()
        encoded = json.dumps(value, default=str)
        self.call(lambda r: r.set(key, encoded, ex=ttl))
        return value

    def _count(self, namespace: str, hit: bool) -> None:
        (metrics.CACHE_HITS if hit else metrics.CACHE_MISSES).labels(namespace.split(":", 1)[0]).inc()
        with self._lock:
            self._pending["hits" if hit else "misses"] += 1
            due = time.monotonic() - self._last_stats_flush >= STATS_FLUSH_SECONDS
            if not due:
                return
            pending, self._pending = self._pending, {"hits": 0, "misses": 0}
            self._last_stats_flush = time.monotonic()
        self.flush_stats(pending)

    def flush_stats(self, pending: dict[str, int] | None = None) -> None:
        """Add the locally counted hits/misses to the totals in Redis."""
        if pending is None:
            with self._lock:
                pending, self._pending = self._pending, {"hits": 0, "misses": 0}

        def write(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for field, amount in pending.items():
                if amount:
                    pipe.hincrby(self.stats_key, field, amount)
            pipe.execute()

        self.call(write)

    def stats(self) -> dict[str, int] | None:
        """App-wide hit/miss totals from Redis, or None when Redis is unavailable."""
        raw = self.call(lambda r: r.hgetall(self.stats_key))
        if raw is None:
            return None
        return {"hits": int(raw.get(b"hits", 0)), "misses": int(raw.get(b"misses", 0))}

    # Invalidation -----------------------------------------------------------------------------------------
    def invalidate(self, namespaces: Iterable[str]) -> None:
        """Make every cached entry of these namespaces unreachable (one INCR each, pipelined)."""
        names = list(namespaces)
        if not names:
            return

        def bump(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.incr(self.gen_key(name))
            pipe.execute()

        self.call(bump)

    def clear_all(self) -> int:
        """Invalidate and delete every cache entry of this app (SCAN + UNLINK; never KEYS or FLUSHDB).

        Generation counters are bumped rather than deleted so that an entry written concurrently under an
        old generation can never become current again. Returns the number of entries deleted.
        """

        def clear(r: redis.Redis) -> int:
            names = [key.decode()[len(f"{self.prefix}gen:"):]
                     for key in r.scan_iter(match=f"{self.prefix}gen:*", count=1000)]
            self.invalidate(names)
            deleted = 0
            batch: list[bytes] = []
            for key in r.scan_iter(match=f"{self.prefix}cache:*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += r.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += r.unlink(*batch)
            return deleted

        return self.call(clear) or 0


def current_cache() -> Cache:
    """The Cache bound to the current app."""
    return current_app.extensions["talentsphere.cache"]


# Module-level names, so callers import ``cache`` and ``invalidate_cache`` once; the proxy resolves to the
# current app's Cache at call time (each app, and each test app, has its own).
cache: Cache = LocalProxy(current_cache)  # type: ignore[assignment]


def invalidate_cache(namespaces: Iterable[str]) -> None:
    """Invalidate the given cache namespaces of the current app (e.g. ``['jobs_featured', 'job_search']``)."""
    current_cache().invalidate(namespaces)
