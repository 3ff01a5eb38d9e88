"""Redis cache with a TTL per namespace, generation-counter invalidation, a circuit breaker, invalidations
that survive Redis faults, one round trip per hit, and misses of one key coalesced.

Usage::

    from talentsphere.cache import cache, invalidate_cache
    return cache.get_or_set_response('jobs_featured', {'limit': 10}, produce)  # an endpoint: a Flask Response
    cache.get_or_set('jobs_featured', {'limit': 10}, produce)                  # anyone else: the value
    invalidate_cache(['jobs_featured', 'job_search'])
    cache.clear_all()

Keys (all under CACHE_KEY_PREFIX, the only keys the app's Redis ACL user may touch):

- ``{prefix}cache:{namespace}:{digest}``: one entry, written with its namespace's TTL. Its value is a header,
  the ``{epoch}.{generation}`` it was computed under, a newline, then the encoded body;
- ``{prefix}gen:{namespace}``: the namespace's generation counter (INCR on invalidation; no TTL);
- ``{prefix}epoch:cache``: a random token every entry header carries; a new token orphans every entry at once
  (``clear_all``, and recovery from a Redis that went back in time, below);
- ``{prefix}witness:cache:{id}``: one per process that invalidated in the last hour, see below;
- ``{prefix}lock:cache:{namespace}:{epoch}.{generation}:{digest}``: the fill lock of one entry (below), with
  a TTL of CACHE_LOCK_WAIT.

A hit is one round trip: one MGET of (epoch, generation, entry[, this process's witness]). Redis runs a
command atomically, so these values are one snapshot: the entry is current exactly when its header equals
the epoch and generation read with it, and any other header is a miss. The entry key therefore does not
carry the generation: a key computed from the generation needs the generation first, a second round trip.
A Lua script reading the same keys would be one round trip too, but MGET needs no EVALSHA (no NOSCRIPT
reload after a Redis restart, no script holding a single-threaded Redis, nothing to add to the ACL) and
leaves the comparison to the client; its only cost is that an entry orphaned by an invalidation travels to
the client once, on a lookup that is a miss anyway. The entry holds the response body as the app's JSON
provider encoded it (``get_or_set_response``): a hit returns those bytes as they are, with no decoding or
encoding. ``get_or_set`` (callers that want the value) stores ``json.dumps`` of it and decodes a hit.

If Redis fails or is slower than its socket timeout, the breaker opens for a cooldown and every lookup is a
miss served by PostgreSQL, so a dead Redis costs one timeout per cooldown, not one per request.

Misses of one key are coalesced
-------------------------------
A miss takes the entry's fill lock (SET NX PX, CACHE_LOCK_WAIT) before it computes. The winner computes and
stores; the other misses of the same entry poll it (the same MGET, plus the lock), backing off from 5 to
25 ms, and use it as soon as its header matches. A waiter computes itself, never fails: when Redis cannot
take the lock (down, breaker open, OOM), when its own wait reaches CACHE_LOCK_WAIT, or when it takes the
lock over because the holder no longer holds it (the holder's producer raised, which deletes the lock, or
the holder died and the lock expired). So an expiry or an invalidation costs PostgreSQL one computation per
entry, a holder that dies delays the others by at most CACHE_LOCK_WAIT, and a producer slower than that lets
at most one more start per lock period, plus the waiters whose own wait ran out. The lock key carries the
header: after an invalidation the misses contend for a new lock instead of waiting for a holder computing
for the old generation, and a waiter only takes an entry whose header matches the generation read in the
same MGET, so it is never handed an answer computed before an invalidation that it has seen (guarantee
(a) below holds for waiters too). CACHE_LOCK_WAIT=0 turns coalescing off.

Redis faults: an invalidation is never lost
-------------------------------------------
Two faults used to bring invalidated entries back: (1) an INCR that could not reach Redis (timeout, Redis
down, breaker open) was dropped, so once Redis answered again the entries from before the write were still
current; (2) a Redis restarted from an older RDB snapshot (or an AOF missing its last second) holds the
entries AND the generation counters as they were before later invalidations, which makes those entries
current again. Each process (Gunicorn worker) has its own memory, so the process that made the write has to
repair Redis for every other process:

- Pending invalidations. An invalidation first goes into this process's pending set, then to Redis. It
  leaves the set only when Redis has executed it. While a namespace is pending here, this process never
  reads it from Redis. A background "keeper" thread retries the pending set every KEEPER_INTERVAL (1 s),
  ignoring the breaker (no request waits for it), and every lookup retries it first. A replay INCRs again:
  if the lost INCR had in fact been applied (its reply timed out), that costs a miss, never a stale answer.
- Witness against rollback. Every invalidation runs as one Lua script that also writes this process's
  sequence number into its witness key, atomically with the INCRs: a snapshot holds both or neither. For
  WITNESS_WINDOW (the longest TTL + 1 min) after its last invalidation, the process reads its witness with
  each lookup (one more key in the MGET) and from the keeper every second. A witness missing or below the
  number this process last wrote means Redis lost writes it had acknowledged: the process replaces the
  epoch with a new random token, and every process's next lookup misses. Only this process writes its
  witness, so later INCRs by others cannot mask the loss (a global counter could), and a new random epoch
  is never reused, so generation numbers handed out again after a rollback cannot resurrect entries either.
  Redis restarted empty has no epoch: the first lookup creates a new one (SET NX).
- ``clear_all`` also goes through the pending set (as a new epoch), then deletes the entries with SCAN +
  UNLINK.

Guarantee (time an answer from before a write can still be served after the write's request returned):

(a) Redis up: none. The INCRs run after the PostgreSQL commit and before the response.
(b) Redis unreachable or slow for the writing process (outage, blip over the socket timeout, breaker
    open), Redis keeping its data: that process serves nothing cached for the namespace; the other
    processes can serve the old answer until the writer reaches Redis again plus at most KEEPER_INTERVAL
    (1 s) and one socket timeout.
(c) Redis restarted from an older snapshot: at most KEEPER_INTERVAL plus one socket timeout after Redis
    answers again (the writer's keeper finds its witness behind and moves the cache to a new epoch).
In (b) and (c) this assumes the writing process is still running: one that exits leaves its unsent
invalidations to one last attempt at exit (atexit); if Redis is still unreachable then, or the process was
killed (host crash taking the app with Redis), the bound is the namespace's TTL (5 min to 1 h), as it is for
data changed in PostgreSQL without the API. A witness evicted under memory pressure (it has a TTL; the
process reads it on every lookup, so LRU keeps it) looks like a rollback: a needless new epoch, never a
stale answer.

Memory: entries and witnesses are written with a TTL; generation counters, the epoch and the hit/miss totals
have none, so Redis must evict only keys with a TTL (the deploy's ``volatile-lru``): an evicted counter would
fall back to 0 and make entries from before an invalidation current again. When nothing with a TTL is left
to evict, Redis answers writes with ``OOM``. A command Redis answers with an error fails alone and the
breaker stays closed (Redis is reachable and answered fast): a refused cache write is a miss, and a refused
invalidation is dropped from the pending set, since Redis refuses only after evicting every key with a TTL,
so no entry is left to be stale.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from flask import Response, current_app, has_app_context
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
# Seconds between two rounds of the keeper thread: retry pending invalidations, check the witness.
KEEPER_INTERVAL = 1.0
# How long after its last invalidation a process checks its witness: every entry it invalidated has expired by
# then, whatever Redis restores. The witness key itself lives a minute longer (clock skew).
WITNESS_WINDOW = max(TTLS.values()) + 60
WITNESS_TTL = WITNESS_WINDOW + 60

# Redis statuses of one guarded command.
OK, REFUSED, UNAVAILABLE = "ok", "refused", "unavailable"
# Outcomes of one read: the entry is current; it is not (compute it, under the fill lock); Redis cannot be used
# for this namespace now (compute it, store nothing).
HIT, MISS, BYPASS = "hit", "miss", "bypass"
# How long a miss waits for another process filling the same entry (and that process's lock TTL), in seconds,
# when the app's CACHE_LOCK_WAIT does not say: about the slowest cached query under load.
LOCK_WAIT = 0.5
# A waiter's first poll of the entry, and the longest pause between two polls, in seconds.
POLL_FIRST = 0.005
POLL_MAX = 0.025
# A computed answer stored as JSON null (a company that does not exist) comes back as None.
NULL_BODY = b"null"

# One invalidation, atomically: check this process's witness (KEYS[1]) against the sequence number it last
# wrote (ARGV[1]); if Redis lost it, or a new epoch is asked for (ARGV[4] == '1'), or there is no epoch yet,
# write a new epoch (ARGV[3]) to KEYS[2]; INCR the generation counters KEYS[3..]; write the new sequence
# number ARGV[2] with a TTL of ARGV[5] seconds. Returns {1 if the epoch was replaced because of a loss, epoch}.
INVALIDATE_SCRIPT = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local lost = seen < tonumber(ARGV[1])
local epoch = redis.call('GET', KEYS[2])
if lost or ARGV[4] == '1' or not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
end
for i = 3, #KEYS do
  redis.call('INCR', KEYS[i])
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5])
if lost then return {1, epoch} end
return {0, epoch}
"""


# The answer came from Redis: the body is all there is (get_or_set decodes it).
_STORED = object()


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

    def __init__(self, url: str, prefix: str, socket_timeout: float = 0.25, cooldown: float = 5.0,
                 keeper_interval: float = KEEPER_INTERVAL, lock_wait: float | None = None) -> None:
        self.prefix = prefix
        # None: the current app's CACHE_LOCK_WAIT (LOCK_WAIT outside an app), read on a miss only.
        self.lock_wait = lock_wait
        # No client-side retries: redis-py retries 3 times with backoff by default, which would multiply the
        # cost of a dead Redis; the breaker below is the retry policy.
        self.client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=30,
        )
        self.breaker = CircuitBreaker(cooldown)
        self.keeper_interval = keeper_interval
        self._invalidate_script = self.client.register_script(INVALIDATE_SCRIPT)
        self._lock = threading.Lock()
        self._pending = {"hits": 0, "misses": 0}
        self._last_stats_flush = time.monotonic()
        self._last_refusal_log = float("-inf")
        # Invalidation state, guarded by _state_lock; _write_lock keeps one invalidation script in flight per
        # process so that witness numbers reach Redis in order.
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._unsent: set[str] = set()
        self._unsent_epoch = False
        self._pid = 0
        self._witness_id = ""
        self._witness_seq = 0
        self._witness_until = float("-inf")
        self._keeper: threading.Thread | None = None
        self._closed = False
        self._at_exit = False

    # Keys -----------------------------------------------------------------------------------------------
    def gen_key(self, namespace: str) -> str:
        """Key of a namespace's generation counter."""
        return f"{self.prefix}gen:{namespace}"

    def entry_key(self, namespace: str, params: Any) -> str:
        """Key of one cached value: namespace and a digest of the parameters (the generation is in the value)."""
        return f"{self.prefix}cache:{namespace}:{self._digest(params)}"

    def lock_key(self, namespace: str, header: bytes, params: Any) -> str:
        """Key of the fill lock of one entry for one ``{epoch}.{generation}``."""
        return f"{self.prefix}lock:cache:{namespace}:{header.decode()}:{self._digest(params)}"

    @staticmethod
    def _digest(params: Any) -> str:
        return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @property
    def epoch_key(self) -> str:
        """Key of the random token every entry key carries."""
        return f"{self.prefix}epoch:cache"

    @property
    def witness_key(self) -> str:
        """This process's witness: the sequence number of its last invalidation Redis executed."""
        with self._state_lock:
            self._check_fork()
            return self._witness_key()

    def _witness_key(self) -> str:
        return f"{self.prefix}witness:cache:{self._witness_id}"

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
        return self._run(operation)[1]

    def _run(self, operation: Callable[[redis.Redis], T], gated: bool = True) -> tuple[str, T | None]:
        """``call`` with the outcome: OK, REFUSED (error reply) or UNAVAILABLE. ``gated=False`` (the keeper)
        tries even while the breaker is open, and closes it when Redis answers."""
        if gated and self.breaker.is_open:
            metrics.CACHE_ERRORS.inc()
            return UNAVAILABLE, None
        try:
            result = operation(self.client)
        except redis.ResponseError as exc:
            metrics.CACHE_ERRORS.inc()
            self._log_refusal(exc)
            return REFUSED, None
        except redis.RedisError as exc:
            metrics.CACHE_ERRORS.inc()
            was_open = self.breaker.is_open
            self.breaker.trip()
            if not was_open:
                log.warning("redis unavailable (%s); serving from PostgreSQL for %.0fs", exc,
                            self.breaker.cooldown)
            return UNAVAILABLE, None
        self.breaker.reset()
        return OK, result

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
        body, value = self._get_or_produce(namespace, params, producer,
                                           lambda value: json.dumps(value, default=str).encode())
        return json.loads(body) if value is _STORED else value

    def get_or_set_response(self, namespace: str, params: Any,
                            producer: Callable[[], Any]) -> Response | None:
        """``get_or_set`` for an endpoint: a JSON Response whose body is the stored bytes (a hit neither
        decodes nor encodes), or None when the producer returned None (cached too, e.g. a 404).

        A miss encodes the producer's value once with the app's JSON provider, so the body is byte for byte
        what returning the value from the view would send. Needs an app context.
        """
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        body, value = self._get_or_produce(namespace, params, producer,
                                           lambda value: app.json.response(value).get_data())
        if value is None or (value is _STORED and len(body) <= len(NULL_BODY) + 1 and body.strip() == NULL_BODY):
            return None
        return app.response_class(body, mimetype=app.json.mimetype)

    def _get_or_produce(self, namespace: str, params: Any, producer: Callable[[], Any],
                        encode: Callable[[Any], bytes]) -> tuple[bytes, Any]:
        """(the stored body, _STORED) for an answer from Redis, else (its encoding, the value computed here).

        The loop runs once for a hit or a miss that takes the fill lock; it polls only while another
        process holds the lock for the header this lookup last read (module docstring).
        """
        ttl = TTLS[namespace.split(":", 1)[0]]
        key = self.entry_key(namespace, params)
        wait = -1.0  # read on the first miss: a hit needs no setting
        deadline: float | None = None
        locked_for: bytes | None = None  # the header whose lock this lookup tried last
        pause = POLL_FIRST
        while True:
            lock = self.lock_key(namespace, locked_for, params) if locked_for is not None else None
            outcome, data, lock_held = self._read(namespace, key, lock)
            if outcome == HIT:
                self._count(namespace, hit=True)
                return data, _STORED
            if wait < 0:
                wait = self._lock_wait()
            if outcome == BYPASS or wait <= 0:
                return self._produce(namespace, producer, encode, None if outcome == BYPASS else (key, data, ttl))
            header = data
            if header != locked_for or not lock_held:
                # First miss, a new generation (an invalidation while waiting), or a holder that is gone.
                locked_for = header
                lock = self.lock_key(namespace, header, params)
                until = time.monotonic() + wait
                status, won = self._run(lambda r: r.set(lock, b"1", nx=True, px=max(1, int(wait * 1000))))
                if status != OK or won:
                    return self._produce(namespace, producer, encode, (key, header, ttl),
                                         (lock, until) if status == OK else None)
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait
            if now >= deadline:
                return self._produce(namespace, producer, encode, (key, header, ttl))
            time.sleep(min(pause, deadline - now))
            pause = min(pause * 2, POLL_MAX)

    def _read(self, namespace: str, key: str, lock: str | None) -> tuple[str, Any, bool]:
        """One lookup, one MGET (more only to repair Redis): (HIT, body, _), (MISS, the header a new entry
        gets, whether ``lock`` is held) or (BYPASS, None, False)."""
        if self.has_unsent():
            self._send()
            if self._is_unsent(namespace):
                # This process changed the data and Redis does not know yet: what it holds may be stale.
                return BYPASS, None, False
        witness, expected = self._witness_check()
        keys = [self.epoch_key, self.gen_key(namespace), key]
        if lock is not None:
            keys.append(lock)
        if witness:
            keys.append(witness)
        status, values = self._run(lambda r: r.mget(keys))
        if status != OK or values is None:
            return BYPASS, None, False
        epoch, generation, raw = values[0], values[1], values[2]
        if witness and int(values[-1] or 0) < expected:
            epoch = self._send(check=True)  # Redis lost invalidations of ours: a new epoch, which no entry has
        elif epoch is None:
            epoch = self._create_epoch()
        if epoch is None:  # Redis unreachable or refusing writes: no header to check or write
            return BYPASS, None, False
        header = b"%s.%d" % (epoch, int(generation or 0))
        if raw is not None:
            stored, newline, body = raw.partition(b"\n")
            if newline and stored == header:
                return HIT, body, False
        return MISS, header, lock is not None and values[3] is not None

    def _produce(self, namespace: str, producer: Callable[[], Any], encode: Callable[[Any], bytes],
                 store: tuple[str, bytes, int] | None, lock: tuple[str, float] | None = None) -> tuple[bytes, Any]:
        """Compute and encode a miss; store it as (key, header, ttl) unless ``store`` is None, and release the
        fill ``lock`` (key, monotonic expiry) this lookup holds."""
        self._count(namespace, hit=False)
        try:
            value = producer()
        except BaseException:
            if lock is not None:  # a waiter takes over at its next poll rather than when the lock expires
                self.call(lambda r: r.delete(lock[0]))
            raise
        body = encode(value)
        if store is None:
            return body, value
        key, header, ttl = store
        # The lock goes with the write, in the same round trip, so that waiters never wait for an entry that was
        # overwritten (by a fill for an older generation) or refused: they take the lock over instead. A lock
        # that has expired may be someone else's by now and is left alone.
        release = lock is not None and time.monotonic() < lock[1]

        def write(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(key, header + b"\n" + body, ex=ttl)
            if release:
                pipe.delete(lock[0])  # type: ignore[index]
            pipe.execute()  # every command runs; a refused SET (OOM) is then reported like any refusal

        self.call(write)
        return body, value

    def _lock_wait(self) -> float:
        """Seconds a miss waits for the fill lock's holder (also the lock's TTL); 0 or less: no lock."""
        if self.lock_wait is not None:
            return self.lock_wait
        if has_app_context():
            return float(current_app.config.get("CACHE_LOCK_WAIT", LOCK_WAIT))
        return LOCK_WAIT

    def _create_epoch(self) -> bytes | None:
        """The epoch, created if Redis has none (it restarted empty); None if Redis cannot say."""
        def create(r: redis.Redis) -> Any:
            pipe = r.pipeline(transaction=False)
            pipe.set(self.epoch_key, secrets.token_hex(8), nx=True)
            pipe.get(self.epoch_key)
            return pipe.execute(raise_on_error=False)[1]

        epoch = self.call(create)
        return epoch if isinstance(epoch, bytes) else None

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
                self._last_stats_flush = time.monotonic()

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
        """Make every cached entry of these namespaces unreachable, for every process, even if Redis cannot
        be reached right now (then this process keeps them and sends them as soon as it can)."""
        names = list(namespaces)
        if not names:
            return
        with self._state_lock:
            self._unsent.update(names)
        self._send()

    def clear_all(self) -> int:
        """Invalidate and delete every cache entry of this app (SCAN + UNLINK; never KEYS or FLUSHDB).

        Entries are orphaned by a new random epoch first, so an entry written concurrently under the old one
        can never become current again; an epoch that could not be written is sent like any invalidation.
        Returns the number of entries deleted.
        """
        with self._state_lock:
            self._unsent_epoch = True
        self._send()

        def clear(r: redis.Redis) -> int:
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

    def has_unsent(self) -> bool:
        """True while this process holds invalidations Redis has not executed."""
        with self._state_lock:
            return bool(self._unsent) or self._unsent_epoch

    def _is_unsent(self, namespace: str) -> bool:
        with self._state_lock:
            return self._unsent_epoch or namespace in self._unsent

    def _check_fork(self) -> None:
        """(Under _state_lock.) A forked child is another process: its own witness, no keeper yet."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._witness_id = secrets.token_hex(8)
            self._witness_seq = 0
            self._witness_until = float("-inf")
            self._keeper = None

    def _witness_check(self) -> tuple[str | None, int]:
        """This process's witness key and the number it must hold, or (None, 0) outside the window."""
        with self._state_lock:
            self._check_fork()
            if time.monotonic() >= self._witness_until:
                return None, 0
            return self._witness_key(), self._witness_seq

    def _send(self, gated: bool = True, check: bool = False) -> bytes | None:
        """Run the invalidation script with this process's unsent invalidations (with ``check``, also when
        there are none, to repair a lost witness). Returns the epoch in effect, or None if not run."""
        with self._write_lock:
            with self._state_lock:
                self._check_fork()
                names = sorted(self._unsent)
                new_epoch = self._unsent_epoch
                expected = self._witness_seq
                witness = self._witness_key()
            if not names and not new_epoch and not check:
                return None
            keys = [witness, self.epoch_key, *(self.gen_key(name) for name in names)]
            args = [expected, expected + 1, secrets.token_hex(8), int(new_epoch), WITNESS_TTL]
            status, result = self._run(lambda r: self._invalidate_script(keys=keys, args=args, client=r), gated)
            with self._state_lock:
                if status != UNAVAILABLE:
                    # Executed, or refused: Redis refuses writes only once every key with a TTL (every entry)
                    # is evicted, so nothing is left for these invalidations to hide.
                    self._unsent.difference_update(names)
                    self._unsent_epoch = self._unsent_epoch and not new_epoch
                if status == OK:
                    self._witness_seq = expected + 1
                    self._witness_until = time.monotonic() + WITNESS_WINDOW
                elif status == REFUSED:
                    self._witness_seq = 0  # nothing written: stop checking a witness Redis could not keep
                    self._witness_until = float("-inf")
        self._ensure_keeper()
        if status != OK or result is None:
            return None
        lost, epoch = result
        if lost:
            log.warning("redis no longer holds invalidations this process made (restarted from an older "
                        "snapshot?): every cache entry is dropped (new epoch)")
        return epoch

    # Keeper ---------------------------------------------------------------------------------------------------
    def _has_work(self) -> bool:
        """(Under _state_lock.) Unsent invalidations, or a witness to watch."""
        return bool(self._unsent) or self._unsent_epoch or time.monotonic() < self._witness_until

    def _ensure_keeper(self) -> None:
        """Start this process's keeper thread if there is work for it and it is not running."""
        with self._state_lock:
            self._check_fork()
            if self._closed or not self._has_work():
                return
            if self._keeper is not None and self._keeper.is_alive():
                return
            self._keeper = threading.Thread(target=_keep, args=(weakref.ref(self), self.keeper_interval),
                                            name="talentsphere-cache-keeper", daemon=True)
            self._keeper.start()
            if not self._at_exit:
                self._at_exit = True
                atexit.register(_close_at_exit, weakref.ref(self))

    def keep_once(self) -> bool:
        """One keeper round: send unsent invalidations, else check the witness. False when idle."""
        with self._state_lock:
            if self._closed or self._keeper is not threading.current_thread() or not self._has_work():
                if self._keeper is threading.current_thread():
                    self._keeper = None
                return False
            unsent = bool(self._unsent) or self._unsent_epoch
            witness, expected = self._witness_key(), self._witness_seq
        if unsent:
            self._send(gated=False)
        else:
            status, seen = self._run(lambda r: r.get(witness), gated=False)
            if status == OK and int(seen or 0) < expected:
                self._send(gated=False, check=True)
        return True

    def close(self) -> None:
        """Stop the keeper after one last attempt to send unsent invalidations (also run at exit)."""
        if self.has_unsent():
            self._send(gated=False)
        with self._state_lock:
            self._closed = True


def _keep(ref: weakref.ReferenceType[Cache], interval: float) -> None:
    """The keeper thread: holds the Cache weakly, so that it ends with it."""
    while True:
        time.sleep(interval)
        cache = ref()
        if cache is None or not cache.keep_once():
            return
        del cache


def _close_at_exit(ref: weakref.ReferenceType[Cache]) -> None:
    cache = ref()
    if cache is not None:
        cache.close()


def current_cache() -> Cache:
    """The Cache bound to the current app."""
    return current_app.extensions["talentsphere.cache"]


# Module-level names, so callers import ``cache`` and ``invalidate_cache`` once; the proxy resolves to the
# current app's Cache at call time (each app, and each test app, has its own).
cache: Cache = LocalProxy(current_cache)  # type: ignore[assignment]


def invalidate_cache(namespaces: Iterable[str]) -> None:
    """Invalidate the given cache namespaces of the current app (e.g. ``['jobs_featured', 'job_search']``)."""
    current_cache().invalidate(namespaces)
