"""Job view counts: buffered in a Redis hash, written to PostgreSQL in one statement per flush.

``record`` adds one view to ``{prefix}views:buffer`` (HINCRBY). ``flush`` first RENAMEs the buffer to
``{prefix}views:processing`` so new views keep landing in a fresh buffer, writes the processing hash in a
single UPDATE ... FROM unnest(...), commits, and only then deletes the processing key. With Redis down,
``record`` increments the row directly.

Delivery is at-least-once: no failure of PostgreSQL, of a flush or of the app loses a recorded view, and
a view may be counted twice. A flush that fails before its commit leaves the processing key, and the next
flush writes it first. Two windows count twice: PostgreSQL committed but Redis failed before the processing
key was deleted (the next flush writes the same hash again), and an HINCRBY that reached Redis but whose
reply timed out (``record`` then also writes the row directly). Views are "never lost" only as long as
Redis keeps the buffer: the deploy runs Redis with RDB snapshots and no append-only log, so a Redis crash
loses the views buffered since its last snapshot; a clean restart saves a snapshot first and loses nothing.
Memory pressure never drops the buffer: it has no TTL and the deploy's ``volatile-lru`` policy evicts only
keys with one (cache entries). When nothing evictable is left, Redis refuses the HINCRBY with OOM and
``record`` writes the row directly, as with Redis down; a flush still works then (RENAME, HGETALL and DEL
need no memory), which frees the buffer's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine, text

from . import metrics
from .cache import Cache

BULK_UPDATE = text(
    "UPDATE jobs SET view_count = jobs.view_count + v.n "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:counts AS integer[])) AS v(id, n) WHERE jobs.id = v.id"
)
DIRECT_UPDATE = text("UPDATE jobs SET view_count = view_count + 1 WHERE id = :id")


@dataclass
class FlushResult:
    """What one flush wrote."""
    jobs: int
    views: int


class ViewCounter:
    """Buffers views in Redis and writes them in bulk."""

    def __init__(self, cache: Cache, engine: Engine) -> None:
        self.cache = cache
        self.engine = engine

    @property
    def buffer_key(self) -> str:
        """Hash of job id -> views not yet written."""
        return f"{self.cache.prefix}views:buffer"

    @property
    def processing_key(self) -> str:
        """Hash being written by a flush (left in place if that flush fails)."""
        return f"{self.cache.prefix}views:processing"

    def record(self, job_id: int) -> bool:
        """Count one view; returns True if buffered, False if written directly because Redis is down."""
        if self.cache.call(lambda r: r.hincrby(self.buffer_key, str(job_id), 1)) is not None:
            return True
        with self.engine.begin() as conn:
            conn.execute(DIRECT_UPDATE, {"id": job_id})
        return False

    def pending(self) -> dict[int, int]:
        """Views buffered (including a failed flush's leftovers), by job id."""
        def read(r: redis.Redis) -> dict[int, int]:
            totals: dict[int, int] = {}
            for key in (self.processing_key, self.buffer_key):
                for job_id, count in r.hgetall(key).items():
                    totals[int(job_id)] = totals.get(int(job_id), 0) + int(count)
            return totals
        return self.cache.call(read) or {}

    def flush(self) -> FlushResult:
        """Write buffered views to PostgreSQL; a Redis or PostgreSQL error raises and keeps them buffered."""
        client = self.cache.client
        total = FlushResult(jobs=0, views=0)
        # A leftover processing hash (failed earlier flush) is written first, then the live buffer.
        for _ in range(2):
            if not client.exists(self.processing_key):
                try:
                    client.rename(self.buffer_key, self.processing_key)
                except redis.ResponseError:
                    break  # no buffer: nothing was viewed since the last flush
            written = self._write(client.hgetall(self.processing_key))
            client.delete(self.processing_key)
            total.jobs += written.jobs
            total.views += written.views
        metrics.VIEWS_FLUSHED.inc(total.views)
        return total

    def _write(self, raw: dict[bytes, bytes]) -> FlushResult:
        ids = [int(job_id) for job_id in raw]
        counts = [int(count) for count in raw.values()]
        if ids:
            with self.engine.begin() as conn:
                conn.execute(BULK_UPDATE, {"ids": ids, "counts": counts})
        return FlushResult(jobs=len(ids), views=sum(counts))
