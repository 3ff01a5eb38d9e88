"""View flushes count every view exactly once: several hosts flushing together, a flush dying before or after
its PostgreSQL commit (talentsphere/view_counts.py).

Each simulated host has its own Redis client and its own engine, like the flush timer on each app host; they
share a key prefix of the test's own, so the session app's flushes (prefix ``ts:``) do not interfere.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from app_helpers import post_job
from app_services import free_port
from sqlalchemy import Engine, create_engine, event

from talentsphere.cache import Cache
from talentsphere.config import normalize_database_url
from talentsphere.view_counts import ViewCounter

ROUNDS = 30


class SimulatedCrash(Exception):
    """Raised inside a flush, as if its process died there."""


@pytest.fixture
def hosts(app_env, redis_server) -> Iterator[Callable[[], ViewCounter]]:  # noqa: ANN001
    """Make flushers: one Redis client and one engine each, sharing a fresh key prefix."""
    prefix = f"ts:v{uuid.uuid4().hex[:8]}:"
    engines: list[Engine] = []
    caches: list[Cache] = []

    def make() -> ViewCounter:
        engine = create_engine(normalize_database_url(app_env["DATABASE_URL"]))
        cache = Cache(redis_server.app_url, prefix, socket_timeout=2.0)
        engines.append(engine)
        caches.append(cache)
        return ViewCounter(cache, engine)

    yield make
    for cache in caches:
        cache.close()
    for engine in engines:
        engine.dispose()


def _views(engine: Engine, job_id: int) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT view_count FROM jobs WHERE id = %s", (job_id,)).scalar()


def _buffer(counter: ViewCounter, job_id: int, views: int) -> None:
    counter.cache.client.hincrby(counter.buffer_key, str(job_id), views)


def _flush_together(counters: list[ViewCounter]) -> None:
    """Start every counter's flush at the same moment (threads), as timers on several hosts do."""
    barrier = threading.Barrier(len(counters))
    errors: list[BaseException] = []

    def run(counter: ViewCounter) -> None:
        try:
            barrier.wait(timeout=10)
            counter.flush()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(counter,)) for counter in counters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


@contextmanager
def _crash_on(engine: Engine, event_name: str, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` at an engine event (``before_cursor_execute`` of the UPDATE, or ``commit``)."""
    def hook(conn, *args) -> None:  # noqa: ANN001
        if event_name == "commit" or args[1].lstrip().upper().startswith("UPDATE JOBS"):
            action()

    event.listen(engine, event_name, hook)
    try:
        yield
    finally:
        event.remove(engine, event_name, hook)


def test_hosts_flushing_together_count_every_view_once(client, employer, hosts) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    counters = [hosts() for _ in range(3)]
    expected = 0
    for round_ in range(ROUNDS):
        views = 5 + round_ % 7
        _buffer(counters[0], job["id"], views)
        expected += views
        _flush_together(counters)
        assert _views(counters[0].engine, job["id"]) == expected, f"round {round_}"
    assert counters[0].pending() == {}


def test_a_flush_dying_before_its_commit_loses_nothing_and_the_next_flushes_count_it_once(
        client, employer, hosts) -> None:  # noqa: ANN001
    """The batch it took stays in Redis and is written by the next flush (here on two hosts at once)."""
    job = post_job(client, employer)
    dying, *others = [hosts() for _ in range(3)]
    expected = 0
    for round_ in range(ROUNDS // 2):
        _buffer(dying, job["id"], 4)
        with _crash_on(dying.engine, "before_cursor_execute", lambda: (_ for _ in ()).throw(SimulatedCrash())):
            with pytest.raises(SimulatedCrash):
                dying.flush()
        assert dying.pending() == {job["id"]: 4}
        _buffer(dying, job["id"], 3)  # views arriving while the taken batch waits
        expected += 7
        _flush_together(others)
        assert _views(dying.engine, job["id"]) == expected, f"round {round_}"
    assert dying.pending() == {}


def test_a_flush_dying_after_its_commit_counts_nothing_twice(client, employer, hosts) -> None:  # noqa: ANN001
    """PostgreSQL committed, then the flusher lost Redis before it removed the batch."""
    job = post_job(client, employer)
    dying, other = hosts(), hosts()
    _buffer(dying, job["id"], 6)

    def lose_redis() -> None:
        pool = dying.cache.client.connection_pool
        pool.connection_kwargs["port"] = free_port()  # nobody listens there
        pool.reset()

    with _crash_on(dying.engine, "commit", lose_redis):
        try:
            dying.flush()
        except redis.RedisError:
            pass
    assert _views(other.engine, job["id"]) == 6
    other.flush()
    assert _views(other.engine, job["id"]) == 6
    assert other.pending() == {}
    _buffer(other, job["id"], 1)
    other.flush()
    assert _views(other.engine, job["id"]) == 7


def test_a_second_flush_while_one_holds_the_batch_skips_it(client, employer, hosts) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    first, second = hosts(), hosts()
    _buffer(first, job["id"], 2)
    results = []
    with _crash_on(first.engine, "before_cursor_execute", lambda: results.append(second.flush())):
        first.flush()
    assert [(r.views, r.skipped) for r in results] == [(0, True)]
    assert _views(first.engine, job["id"]) == 2
