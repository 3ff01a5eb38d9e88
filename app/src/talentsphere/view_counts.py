"""Job view counts: buffered in a Redis hash, written to PostgreSQL exactly once, in one UPDATE per batch.

``record`` adds one view to ``{prefix}views:buffer`` (HINCRBY); with Redis down (or refusing the write for
memory) it increments the row directly. ``flush`` (the timer runs it every minute on every app host) writes
the buffer in batches, each in one PostgreSQL transaction:

1. ``pg_try_advisory_xact_lock``: one flush at a time across hosts; the others skip (the holder writes
   their views too). The lock lives exactly as long as the transaction that writes the counts: it cannot
   expire under a slow flusher as a Redis lease can (which would let two flushers commit the same batch),
   and PostgreSQL releases it when a flusher dies. The same statement reads the transaction's id (txid).
2. Take (Lua): RENAME the buffer to ``{prefix}views:processing``, unless a processing hash is left by a
   flush that died; that one is retried first, never overwritten (new views keep landing in a new buffer).
3. Claim (Lua, compare-and-set): record the txid in ``{prefix}views:claim`` and read the batch, atomically.
4. One ``UPDATE ... FROM unnest(...)``, COMMIT, then remove the batch and its claim (compare-and-delete).

A processing hash found in step 2 with a claim is resolved by PostgreSQL's commit log: ``txid_status``
'committed' means its views are already counted (the flusher died after COMMIT): it is removed, not
written again; 'aborted' means they are not: it is claimed anew and written. So a flusher that dies at any
point, a PostgreSQL or Redis error, or several hosts flushing together neither lose nor double count a
view. A flusher that lost its lock (its transaction aborted) can still reach Redis, but neither steal a
claimed batch (compare-and-set), nor delete another flush's batch (compare-and-delete), nor commit.
Why not an idempotency record (flush id) in PostgreSQL: it needs a table; the txid and ``txid_status``
are that record, kept by PostgreSQL itself.

What this does not cover, and what happens then:

- An HINCRBY whose reply timed out after Redis applied it: ``record`` also writes the row, one view twice.
- Redis losing writes it acknowledged. RDB snapshots only: a crash loses the views buffered since the last
  snapshot. With AOF ``appendfsync everysec`` (the deploy's redis role): a crash of the Redis process loses
  nothing; a crash of its host loses about the last second (two with a slow disk), those views, and a
  flush that finished in that second can be counted again (its take and claim are lost with it).
- Redis out of memory (full of keys without a TTL): the claim (a SET) is refused, the flush goes on without
  one, and that batch is counted at least once instead of exactly once (twice only if the flusher dies
  between COMMIT and removing it). RENAME, HGETALL and DEL need no memory, so the flush still frees the
  buffer. Eviction never drops the buffer: it has no TTL and the deploy's ``volatile-lru`` policy evicts
  only keys with one (cache entries).
- A claim older than PostgreSQL's commit log (``txid_status`` NULL: a batch left for hundreds of millions
  of transactions) is dropped with an error naming its counts, so it is never counted twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis
from sqlalchemy import Connection, Engine, text

from . import metrics
from .cache import Cache

log = logging.getLogger("talentsphere.views")

BULK_UPDATE = text(
    "UPDATE jobs SET view_count = jobs.view_count + v.n "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:counts AS integer[])) AS v(id, n) WHERE jobs.id = v.id"
)
DIRECT_UPDATE = text("UPDATE jobs SET view_count = view_count + 1 WHERE id = :id")
LOCK = text("SELECT pg_try_advisory_xact_lock(:lock), txid_current()")
TXID_STATUS = text("SELECT txid_status(:txid)")

# KEYS: buffer, processing, claim. A left processing hash is kept; otherwise the buffer becomes it (a claim
# without its hash belongs to no batch and is dropped). Returns the claim ('' if none), or nil: nothing to do.
TAKE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return false end
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('DEL', KEYS[3])
end
return redis.call('GET', KEYS[3]) or ''
"""
# KEYS: processing, claim; ARGV: the claim seen ('' if none), the new claim. Returns the batch, or nil if the
# claim changed since it was seen.
CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return false end
redis.call('SET', KEYS[2], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""
# KEYS: processing, claim; ARGV: the claim ('' if none). Deletes the batch only if it still has that claim.
RELEASE_SCRIPT = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""
# A flush takes at most a batch already counted, a batch left uncounted and the buffer; views arriving
# meanwhile wait for the next run.
MAX_BATCHES = 3


@dataclass
class FlushResult:
    """What one flush wrote (``skipped``: another host's flush held the lock and writes the buffer)."""
    jobs: int
    views: int
    skipped: bool = False


class ViewCounter:
    """Buffers views in Redis and writes them in bulk."""

    def __init__(self, cache: Cache, engine: Engine) -> None:
        self.cache = cache
        self.engine = engine
        self._take = cache.client.register_script(TAKE_SCRIPT)
        self._claim = cache.client.register_script(CLAIM_SCRIPT)
        self._release = cache.client.register_script(RELEASE_SCRIPT)

    @property
    def buffer_key(self) -> str:
        """Hash of job id -> views not yet written."""
        return f"{self.cache.prefix}views:buffer"

    @property
    def processing_key(self) -> str:
        """Hash being written by a flush (left in place if that flush fails)."""
        return f"{self.cache.prefix}views:processing"

    @property
    def claim_key(self) -> str:
        """The PostgreSQL txid of the flush writing the processing hash."""
        return f"{self.cache.prefix}views:claim"

    @property
    def lock_id(self) -> int:
        """The advisory lock flushes of this key prefix take (advisory locks are per database)."""
        digest = hashlib.sha256(f"{self.cache.prefix}views:flush".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

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
        for _ in range(MAX_BATCHES):
            if not client.exists(self.processing_key, self.buffer_key):
                break  # nothing viewed since the last flush: no PostgreSQL transaction
            written = self._flush_batch(client)
            if written is None:
                total.skipped = True
                break
            total.jobs += written.jobs
            total.views += written.views
        metrics.VIEWS_FLUSHED.inc(total.views)
        return total

    def _flush_batch(self, client: redis.Redis) -> FlushResult | None:
        """Steps 1-4 for one batch; None if another flush holds the lock."""
        keys = [self.processing_key, self.claim_key]
        written = FlushResult(jobs=0, views=0)
        with self.engine.begin() as conn:
            locked, txid = conn.execute(LOCK, {"lock": self.lock_id}).one()
            if not locked:
                return None
            seen = self._take(keys=[self.buffer_key, *keys], client=client)
            if seen is None:
                return written
            seen = seen.decode()
            if seen and self._counted(conn, client, seen):
                release = seen
            else:
                batch, release = self._claim_batch(client, seen, str(txid))
                written = self._write(conn, batch)
        # Committed (or nothing to commit): the batch may go. If this fails, the next flush finds the claim
        # committed and drops the batch then.
        try:
            self._release(keys=keys, args=[release], client=client)
        except redis.RedisError as exc:
            log.warning("views written to PostgreSQL; their batch stays in Redis until the next flush drops "
                        "it (%s)", exc)
        return written

    def _counted(self, conn: Connection, client: redis.Redis, claim: str) -> bool:
        """Whether the flush that claimed the left processing hash committed it."""
        status = conn.execute(TXID_STATUS, {"txid": int(claim)}).scalar()
        if status == "in progress":  # impossible: its transaction held the lock we hold now
            raise RuntimeError(f"view batch claimed by running transaction {claim}; left for the next flush")
        if status is None:
            log.error("view batch claimed by transaction %s, older than PostgreSQL's commit log: dropped "
                      "without counting it (views by job id: %s)", claim, client.hgetall(self.processing_key))
            return True
        return status == "committed"

    def _claim_batch(self, client: redis.Redis, seen: str, txid: str) -> tuple[dict[bytes, bytes], str]:
        """Claim the processing hash for this transaction and read it; returns it and the claim it holds."""
        try:
            flat = self._claim(keys=[self.processing_key, self.claim_key], args=[seen, txid], client=client)
        except redis.exceptions.OutOfMemoryError:
            log.warning("redis is out of memory: this view batch is written without a claim (at least once, "
                        "not exactly once)")
            return client.hgetall(self.processing_key), seen
        if flat is None:
            raise RuntimeError("the view batch was claimed by another flush meanwhile; left for the next flush")
        return dict(zip(flat[::2], flat[1::2])), txid

    def _write(self, conn: Connection, raw: dict[bytes, bytes]) -> FlushResult:
        ids = [int(job_id) for job_id in raw]
        counts = [int(count) for count in raw.values()]
        if ids:
            conn.execute(BULK_UPDATE, {"ids": ids, "counts": counts})
        return FlushResult(jobs=len(ids), views=sum(counts))
