"""Cache invalidations across Redis faults, on a real Redis of the test's own, with two Cache objects standing
for two app processes: W (the worker that handles the write) and R (any other worker, on any host).

The guarantee under test (talentsphere/cache.py): after a write's request returned, the old answer is served
(a) never with Redis up, (b) for at most KEEPER_INTERVAL after the writer reaches Redis again when its
invalidation could not be sent, (c) for at most KEEPER_INTERVAL after Redis answers again when it restarted
from a snapshot older than the invalidation. The restarts are real: SAVE, then SIGTERM or SIGKILL, then a
new redis-server that loads the snapshot, as after a crash of a Redis with RDB persistence.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from app_services import RedisServer

from talentsphere.cache import KEEPER_INTERVAL, LOCK_WAIT, Cache

NAMESPACE = "jobs_featured"
PARAMS = {"limit": 10}
# Slack above KEEPER_INTERVAL for a socket timeout, the reconnect and the polling period.
SLACK = 1.0


@pytest.fixture
def own_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of the test's own (it is killed and restarted), with the production ACL shape."""
    if not redis_server.is_ours:
        pytest.skip("TS_TEST_REDIS_URL is an external server; this test restarts a Redis of its own")
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(own_redis: RedisServer) -> redis.Redis:
    """An admin connection (SAVE, CLIENT PAUSE: the app user may not)."""
    return redis.Redis.from_url(own_redis.admin_url)


@pytest.fixture
def process(own_redis: RedisServer) -> Iterator[Callable[..., Cache]]:
    """Make Caches like the app's, one per simulated process; their keeper threads are stopped afterwards."""
    prefix = f"ts:t{uuid.uuid4().hex[:8]}:"
    made: list[Cache] = []

    def make(cooldown: float = 5.0) -> Cache:
        cache = Cache(own_redis.app_url, prefix, socket_timeout=0.25, cooldown=cooldown)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


class Database:
    """Stands for PostgreSQL: the answer a cache miss computes, and how often it was computed."""

    def __init__(self) -> None:
        self.value = "before the write"
        self.reads = 0

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return {"value": self.value}


def _restart(server: RedisServer, kill: bool) -> None:
    """Stop Redis (SIGKILL: a crash; SIGTERM: it saves nothing, ``save ""``) and start it on its snapshot."""
    assert server.process is not None
    if kill:
        server.process.kill()
        server.process.wait(timeout=10)
        server.process = None
    else:
        server.halt()
    server.launch()


def _seconds_until_fresh(cache: Cache, db: Database, started: float, timeout: float = 10.0) -> float:
    """Read through ``cache`` until it answers what the database holds; seconds since ``started``."""
    while time.monotonic() - started < timeout:
        if cache.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": db.value}:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"still served the answer from before the write {timeout:.0f}s later")


def _stays_fresh_and_cached(cache: Cache, db: Database, seconds: float = 2.5) -> None:
    """Every answer for ``seconds`` is current (also after any breaker cooldown), and answers are cached
    again: the fix is a repaired Redis, not a cache bypassed for good."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert cache.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": db.value}
        time.sleep(0.05)
    reads = db.reads
    assert cache.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": db.value}
    assert db.reads == reads, "not served from Redis"


def test_a_with_redis_up_every_process_sees_an_invalidation_at_once(process) -> None:  # noqa: ANN001
    writer, reader, db = process(), process(), Database()
    assert reader.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "before the write"}
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    assert reader.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}
    reads = db.reads
    reader.get_or_set("job_categories", {}, db.read)
    reader.get_or_set("job_categories", {}, db.read)
    writer.invalidate([NAMESPACE])  # another namespace's entries stay (no epoch change without a loss)
    reader.get_or_set("job_categories", {}, db.read)
    assert db.reads == reads + 1


def test_b_an_invalidation_made_while_redis_was_down_is_sent_when_it_returns(process, own_redis, admin) -> None:  # noqa: ANN001
    """The lab's case: Redis stopped, a job closed meanwhile, Redis back on its snapshot."""
    writer, reader, db = process(), process(), Database()
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    admin.save()
    own_redis.halt()
    db.value = "after the write"
    writer.invalidate([NAMESPACE])  # connection refused
    assert writer.has_unsent()
    own_redis.launch()  # the snapshot: the entry from before the write and its generation
    started = time.monotonic()

    assert _seconds_until_fresh(reader, db, started) <= KEEPER_INTERVAL + SLACK
    assert not writer.has_unsent()
    _stays_fresh_and_cached(reader, db)
    assert writer.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}


def test_b_an_invalidation_made_while_the_breaker_was_open_after_a_blip_is_sent(process, admin) -> None:  # noqa: ANN001
    """A blip longer than the socket timeout opens the writer's breaker for its cooldown (5 s); Redis is fine
    again long before that, other processes read from it, and the write's INCR must not be dropped."""
    writer, reader, db = process(cooldown=5.0), process(), Database()
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    admin.execute_command("CLIENT", "PAUSE", "600", "ALL")
    writer.get_or_set("job_categories", {}, dict)  # times out: the breaker opens
    assert writer.breaker.is_open
    time.sleep(0.7)  # the blip is over; the writer's breaker stays open for seconds
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    started = time.monotonic()

    assert _seconds_until_fresh(reader, db, started) <= KEEPER_INTERVAL + SLACK
    _stays_fresh_and_cached(reader, db)


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "sigterm"])
def test_c_a_redis_restarted_from_an_older_snapshot_brings_no_invalidated_entry_back(
        process, own_redis, admin, kill: bool) -> None:  # noqa: ANN001
    writer, reader, db = process(), process(), Database()
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    admin.save()  # the snapshot Redis comes back with: before the write
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    assert reader.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}
    _restart(own_redis, kill)
    started = time.monotonic()

    assert _seconds_until_fresh(reader, db, started) <= KEEPER_INTERVAL + SLACK
    _stays_fresh_and_cached(reader, db)


def test_c_the_writer_itself_repairs_redis_on_its_next_read(process, own_redis, admin) -> None:  # noqa: ANN001
    """The witness is also read with every lookup: no keeper round is needed for the writer's own reads."""
    writer, db = process(), Database()
    writer.get_or_set(NAMESPACE, PARAMS, db.read)
    admin.save()
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    _restart(own_redis, kill=True)
    assert writer.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}


def test_a_redis_restarted_empty_serves_nothing_old_and_caches_again(process, own_redis) -> None:  # noqa: ANN001
    writer, reader, db = process(), process(), Database()
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    writer.invalidate([NAMESPACE])
    _restart(own_redis, kill=False)  # no snapshot: empty
    _stays_fresh_and_cached(reader, db, seconds=KEEPER_INTERVAL + SLACK)
    _stays_fresh_and_cached(writer, db, seconds=0.2)


def test_the_app_user_may_run_the_invalidation_script(own_redis) -> None:  # noqa: ANN001
    """EVAL/EVALSHA are not in @dangerous or @admin: the script runs under the production ACL."""
    client = redis.Redis.from_url(own_redis.app_url)
    assert client.eval("return redis.call('INCR', KEYS[1])", 1, "ts:probe") == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.eval("return redis.call('INCR', KEYS[1])", 1, "other:probe")


def _concurrent_lookups(cache: Cache, db: Database, count: int = 4) -> list[float]:
    """``count`` lookups of one entry started together; the seconds each took. Each must answer."""
    barrier = threading.Barrier(count)
    seconds: list[float] = []

    def look() -> None:
        barrier.wait()
        started = time.monotonic()
        assert cache.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": db.value}
        seconds.append(time.monotonic() - started)

    threads = [threading.Thread(target=look) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seconds) == count, "a lookup failed or did not finish"
    return seconds


def test_with_redis_down_concurrent_misses_compute_at_once_without_the_fill_lock(process, own_redis) -> None:  # noqa: ANN001
    """The fill lock lives in Redis: without Redis every miss is served by PostgreSQL at once, none waits."""
    cache, db = process(), Database()
    cache.get_or_set(NAMESPACE, PARAMS, db.read)
    own_redis.halt()
    try:
        seconds = _concurrent_lookups(cache, db)
    finally:
        own_redis.launch()
    assert db.reads == 1 + 4
    assert max(seconds) < LOCK_WAIT / 2


def test_with_redis_refusing_writes_concurrent_misses_compute_at_once(process, admin) -> None:  # noqa: ANN001
    """Redis full (OOM): the fill lock is refused like any write; every miss computes, none waits, none fails."""
    writer, reader, db = process(), process(), Database()
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        seconds = _concurrent_lookups(reader, db)
    finally:
        admin.config_set("maxmemory", 0)
    assert db.reads == 1 + 4
    assert max(seconds) < LOCK_WAIT / 2
    assert not reader.breaker.is_open  # Redis answered: refusals do not open the breaker
