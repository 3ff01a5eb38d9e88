"""Redis cache: the documented TTLs, invalidation on writes, clear_all without KEYS, ACL-limited app user, one
round trip per hit that returns the stored body as is, concurrent misses of one entry computed once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import redis
from app_helpers import counting_statements, make_employer, post_job
from redis.connection import AbstractConnection
from sqlalchemy import text

from talentsphere.cache import TTLS, Cache, cache, invalidate_cache
from talentsphere.config import load_config

CACHED_URLS = ["/api/jobs/featured", "/api/categories", "/api/jobs?q=engineer&per_page=7", "/api/companies/company-4"]
# Scheduling slack on top of a computed bound (threads, polls of up to 25 ms, a loaded test machine).
SLACK = 0.3


@pytest.fixture
def admin_redis(redis_server) -> redis.Redis:  # noqa: ANN001
    """A Redis client with admin rights, to look at what the app wrote."""
    return redis.Redis.from_url(redis_server.admin_url)


def _entry_ttls(admin_redis: redis.Redis, namespace: str) -> list[int]:
    return [admin_redis.ttl(key) for key in admin_redis.scan_iter(match=f"ts:cache:{namespace}:*", count=1000)]


def test_the_ttls_are_the_documented_ones() -> None:
    assert TTLS == {"jobs_featured": 600, "job_categories": 3600, "company_profile": 1800,
                    "employer_dashboard": 900, "job_search": 300}


@pytest.mark.parametrize("url, namespace, ttl", [
    ("/api/jobs/featured", "jobs_featured", 600),
    ("/api/categories", "job_categories", 3600),
    ("/api/companies/company-3", "company_profile:company-3", 1800),
    ("/api/jobs?q=python", "job_search", 300),
])
def test_public_reads_are_cached_with_their_namespace_ttl(client, admin_redis, url: str, namespace: str,
                                                         ttl: int) -> None:  # noqa: ANN001
    assert client.get(url).status_code == 200
    ttls = _entry_ttls(admin_redis, namespace)
    assert ttls and all(ttl - 5 <= value <= ttl for value in ttls)


def test_the_dashboard_is_cached_for_15_minutes(client, employer, admin_redis) -> None:  # noqa: ANN001
    client.get("/api/employer/dashboard", headers=employer.headers)
    ttls = _entry_ttls(admin_redis, f"employer_dashboard:{employer.company['id']}")
    assert ttls and all(895 <= value <= 900 for value in ttls)


@pytest.mark.parametrize("url", ["/api/jobs/featured", "/api/categories", "/api/jobs?q=engineer&per_page=7",
                                 "/api/companies/company-4"])
def test_a_cache_hit_runs_no_sql(client, engine, url: str) -> None:  # noqa: ANN001
    first = client.get(url)
    with counting_statements(engine) as statements:
        second = client.get(url)
    assert statements == []
    assert second.get_json() == first.get_json()


def test_a_new_job_invalidates_featured_search_company_and_dashboard(client, engine, employer) -> None:  # noqa: ANN001
    slug = employer.company["slug"]
    with engine.begin() as conn:  # only verified companies feature jobs; verifying is done in the database
        conn.execute(text("UPDATE companies SET is_verified = true WHERE id = :id"), {"id": employer.company["id"]})
    client.get("/api/jobs/featured?limit=50")
    client.get(f"/api/jobs?company_id={employer.company['id']}")
    client.get(f"/api/companies/{slug}")
    client.get("/api/employer/dashboard", headers=employer.headers)
    job = post_job(client, employer, is_featured=True)
    assert job["id"] in [j["id"] for j in client.get("/api/jobs/featured?limit=50").get_json()["items"]]
    assert [j["id"] for j in client.get(f"/api/jobs?company_id={employer.company['id']}").get_json()["items"]] == [
        job["id"]]
    assert client.get(f"/api/companies/{slug}").get_json()["open_jobs_count"] == 1
    dashboard = client.get("/api/employer/dashboard", headers=employer.headers).get_json()
    assert dashboard["jobs_by_status"]["published"] == 1


def test_updating_and_closing_a_job_invalidate_search(client, employer) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    url = f"/api/jobs?company_id={employer.company['id']}"
    assert client.get(url).get_json()["items"][0]["title"] == "Platform Engineer"
    client.patch(f"/api/jobs/{job['id']}", headers=employer.headers, json={"title": "Database Engineer"})
    assert client.get(url).get_json()["items"][0]["title"] == "Database Engineer"
    client.post(f"/api/jobs/{job['id']}/close", headers=employer.headers)
    assert client.get(url).get_json()["total"] == 0


def test_application_changes_invalidate_that_employers_dashboard(client, employer, seeker) -> None:  # noqa: ANN001
    job = post_job(client, employer)
    assert client.get("/api/employer/dashboard", headers=employer.headers).get_json()[
        "applications_by_status"]["submitted"] == 0
    application = client.post(f"/api/jobs/{job['id']}/applications", headers=seeker.headers, json={}).get_json()
    assert client.get("/api/employer/dashboard", headers=employer.headers).get_json()[
        "applications_by_status"]["submitted"] == 1
    client.post(f"/api/applications/{application['application']['id']}/withdraw", headers=seeker.headers)
    counts = client.get("/api/employer/dashboard", headers=employer.headers).get_json()["applications_by_status"]
    assert (counts["submitted"], counts["withdrawn"]) == (0, 1)


def test_one_employers_change_keeps_another_employers_dashboard_cached(client, employer, engine) -> None:  # noqa: ANN001
    other = make_employer(client)
    client.get("/api/employer/dashboard", headers=other.headers)
    post_job(client, employer)
    with counting_statements(engine) as statements:
        client.get("/api/employer/dashboard", headers=other.headers)
    assert len(statements) == 2  # token's user and company lookups only; the figures come from Redis


def test_invalidate_cache_takes_namespace_names(app, client, engine) -> None:  # noqa: ANN001
    client.get("/api/jobs/featured")
    client.get("/api/categories")
    with app.app_context():
        invalidate_cache(["jobs_featured", "job_search"])
    with counting_statements(engine) as statements:
        client.get("/api/categories")
    assert statements == []
    with counting_statements(engine) as statements:
        client.get("/api/jobs/featured")
    assert len(statements) == 1


def test_clear_all_deletes_every_entry_and_keeps_the_view_buffer(app, client, admin_redis) -> None:  # noqa: ANN001
    client.get("/api/jobs/featured")
    client.get("/api/categories")
    admin_redis.hincrby("ts:views:buffer", "1", 0)
    with app.app_context():
        deleted = cache.clear_all()
    assert deleted >= 2
    assert list(admin_redis.scan_iter(match="ts:cache:*")) == []
    assert admin_redis.exists("ts:views:buffer")


@pytest.mark.parametrize("command", [("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("INFO",), ("CONFIG", "GET", "*")])
def test_the_app_user_is_denied_dangerous_commands(redis_server, command: tuple[str, ...]) -> None:  # noqa: ANN001
    client = redis.Redis.from_url(redis_server.app_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command(*command)


def test_the_app_user_cannot_touch_keys_outside_the_prefix(redis_server) -> None:  # noqa: ANN001
    client = redis.Redis.from_url(redis_server.app_url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("other:key", "1")


def test_hits_and_misses_are_counted(app, client) -> None:  # noqa: ANN001
    cache_ = app.extensions["talentsphere.cache"]
    cache_.flush_stats()
    before = cache_.stats()
    client.get("/api/categories")
    client.get("/api/categories")
    client.get("/api/categories")
    cache_.flush_stats()
    after = cache_.stats()
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (2, 1)



# One round trip per hit ------------------------------------------------------------------------------------
def _command_names(packed: Any) -> list[str]:
    """The command names in one packed write to Redis (several for a pipeline)."""
    data = b"".join(bytes(chunk) for chunk in packed) if isinstance(packed, list) else bytes(packed)
    names, pos = [], 0
    while pos < len(data):
        end = data.index(b"\r\n", pos)
        count, pos = int(data[pos + 1:end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", pos)
            length = int(data[pos + 1:end])
            if index == 0:
                names.append(data[end + 2:end + 2 + length].decode().upper())
            pos = end + 2 + length + 2
    return names


@contextmanager
def redis_round_trips() -> Iterator[list[list[str]]]:
    """What this thread sends to any Redis inside the block: one list of command names per round trip (a
    pipeline is one; redis-py's health-check PING would be one more)."""
    sent: list[list[str]] = []
    original = AbstractConnection.send_packed_command
    thread = threading.get_ident()

    def send(self, command, check_health=True):  # noqa: ANN001, ANN202
        if threading.get_ident() == thread:
            sent.append(_command_names(command))
        return original(self, command, check_health)

    with mock.patch.object(AbstractConnection, "send_packed_command", send):
        yield sent


@pytest.mark.parametrize("url", CACHED_URLS)
def test_a_cache_hit_is_one_redis_round_trip(app, client, url: str) -> None:  # noqa: ANN001
    client.get(url)
    app.extensions["talentsphere.cache"].flush_stats()  # no hit/miss totals due during the hit
    with redis_round_trips() as sent:
        assert client.get(url).status_code == 200
    assert sent == [["MGET"]]


def test_the_dashboard_hit_is_one_redis_round_trip(app, client, employer) -> None:  # noqa: ANN001
    client.get("/api/employer/dashboard", headers=employer.headers)
    app.extensions["talentsphere.cache"].flush_stats()
    with redis_round_trips() as sent:
        assert client.get("/api/employer/dashboard", headers=employer.headers).status_code == 200
    assert sent == [["MGET"]]


def test_a_hit_reads_generation_witness_and_entry_in_the_same_mget(app, client) -> None:  # noqa: ANN001
    """Within an hour of an invalidation the process also reads its witness: still one MGET."""
    cache_ = app.extensions["talentsphere.cache"]
    with app.app_context():
        invalidate_cache(["job_categories"])
    client.get("/api/categories")
    cache_.flush_stats()
    commands: list[tuple[Any, ...]] = []
    original = cache_.client.execute_command

    def record(*args, **options):  # noqa: ANN002, ANN003, ANN202
        commands.append(args)
        return original(*args, **options)

    with mock.patch.object(cache_.client, "execute_command", record):
        assert client.get("/api/categories").status_code == 200
    assert [args[0] for args in commands] == ["MGET"]
    keys = [key.decode() if isinstance(key, bytes) else key for key in commands[0][1:]]
    assert keys[:3] == [cache_.epoch_key, cache_.gen_key("job_categories"), cache_.entry_key("job_categories", {})]
    assert cache_.witness_key in keys


@pytest.mark.parametrize("url", CACHED_URLS + ["/api/companies/no-such-company"])
def test_a_hit_sends_the_stored_bytes_of_the_miss(app, client, admin_redis, url: str) -> None:  # noqa: ANN001
    miss = client.get(url)
    hit = client.get(url)
    assert hit.status_code == miss.status_code
    assert hit.get_data() == miss.get_data()
    for response in (miss, hit):
        assert response.mimetype == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    if miss.status_code == 200:
        # The bytes the app's JSON provider makes of the answer (what the view returning a dict sends) ...
        assert app.json.response(miss.get_json()).get_data() == miss.get_data()
        # ... are what Redis holds, after the header of the epoch.generation they were computed under.
        [key] = [found.decode() for found in admin_redis.scan_iter(match="ts:cache:*")]
        namespace = key.removeprefix("ts:cache:").rsplit(":", 1)[0]
        header, _, body = admin_redis.get(key).partition(b"\n")
        generation = int(admin_redis.get(f"ts:gen:{namespace}") or 0)
        assert header == b"%s.%d" % (admin_redis.get("ts:epoch:cache"), generation)
        assert body == hit.get_data()
    else:
        assert miss.get_json()["error"]["code"] == "not_found"


# Coalesced misses ------------------------------------------------------------------------------------------
NAMESPACE = "jobs_featured"
PARAMS = {"limit": 10}


@pytest.fixture
def process(redis_server) -> Iterator[Callable[..., Cache]]:  # noqa: ANN001
    """Make Caches like the app's, one per simulated process, under a prefix of the test's own."""
    prefix = f"ts:t{uuid.uuid4().hex[:8]}:"
    made: list[Cache] = []

    def make(lock_wait: float | None = 3.0) -> Cache:
        made.append(Cache(redis_server.app_url, prefix, socket_timeout=0.25, cooldown=5.0, lock_wait=lock_wait))
        return made[-1]

    yield make
    for made_cache in made:
        made_cache.close()


class Database:
    """Stands for PostgreSQL: a slow query, how often it ran; ``hold`` keeps the first call inside it."""

    def __init__(self, seconds: float = 0.0, hold: bool = False) -> None:
        self.value = "before the write"
        self.seconds = seconds
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        value = self.value
        if first:
            self.entered.set()
            assert self.release.wait(30)
        time.sleep(self.seconds)
        return {"value": value}


def _in_threads(count: int, target: Callable[[], Any]) -> list[tuple[Any, float]]:
    """Run ``target`` in ``count`` threads started together: (result, seconds) of each."""
    barrier = threading.Barrier(count)
    results: list[tuple[Any, float] | None] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        started = time.monotonic()
        results[index] = (target(), time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(result is not None for result in results), "a lookup did not finish"
    return results  # type: ignore[return-value]


def _hold_the_fill_lock(cache_: Cache, admin_redis: redis.Redis, seconds: float) -> None:
    """Take the entry's fill lock as a process that then dies (never stores, never releases) would."""
    cache_.get_or_set("job_categories", {}, dict)  # an epoch exists
    epoch = admin_redis.get(cache_.epoch_key)
    generation = int(admin_redis.get(cache_.gen_key(NAMESPACE)) or 0)
    lock = cache_.lock_key(NAMESPACE, b"%s.%d" % (epoch, generation), PARAMS)
    assert admin_redis.set(lock, b"1", nx=True, px=int(seconds * 1000))


def test_concurrent_misses_of_one_entry_run_the_producer_once(process) -> None:  # noqa: ANN001
    cache_, db = process(lock_wait=3.0), Database(seconds=0.3)
    results = _in_threads(8, lambda: cache_.get_or_set(NAMESPACE, PARAMS, db.read))
    assert db.calls == 1
    assert [result for result, _ in results] == [{"value": "before the write"}] * 8
    cache_.flush_stats()
    assert cache_.stats() == {"hits": 7, "misses": 1}


def test_concurrent_misses_after_an_invalidation_run_the_producer_once(process) -> None:  # noqa: ANN001
    reader, writer, db = process(), process(), Database(seconds=0.3)
    reader.get_or_set(NAMESPACE, PARAMS, db.read)
    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    results = _in_threads(8, lambda: reader.get_or_set(NAMESPACE, PARAMS, db.read))
    assert db.calls == 2
    assert [result for result, _ in results] == [{"value": "after the write"}] * 8


def test_a_lock_holder_that_dies_delays_a_miss_by_at_most_the_lock_wait(process, admin_redis) -> None:  # noqa: ANN001
    wait = 0.4
    cache_, db = process(lock_wait=wait), Database()
    _hold_the_fill_lock(cache_, admin_redis, seconds=wait)
    started = time.monotonic()
    assert cache_.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "before the write"}
    assert time.monotonic() - started <= wait + SLACK
    assert db.calls == 1
    assert cache_.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "before the write"}
    assert db.calls == 1, "the answer computed after the wait was not stored"


def test_when_a_dead_holders_lock_expires_one_waiter_takes_over(process, admin_redis) -> None:  # noqa: ANN001
    wait = 1.0
    cache_, db = process(lock_wait=wait), Database(seconds=0.1)
    _hold_the_fill_lock(cache_, admin_redis, seconds=wait / 4)  # it died a while after taking the lock
    results = _in_threads(6, lambda: cache_.get_or_set(NAMESPACE, PARAMS, db.read))
    assert db.calls == 1
    assert all(result == {"value": "before the write"} and seconds <= wait / 4 + 0.1 + SLACK
               for result, seconds in results)


def test_a_producer_that_raises_hands_the_fill_to_a_waiter_at_once(process) -> None:  # noqa: ANN001
    cache_, db = process(lock_wait=5.0), Database()
    failing = threading.Event()

    def fail() -> Any:
        failing.set()
        time.sleep(0.2)
        raise RuntimeError("the query failed")

    holder_error: list[BaseException] = []

    def hold() -> None:
        try:
            cache_.get_or_set(NAMESPACE, PARAMS, fail)
        except RuntimeError as exc:
            holder_error.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    assert failing.wait(5)
    started = time.monotonic()
    assert cache_.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "before the write"}
    holder.join(5)
    assert holder_error, "the producer's error did not reach its caller"
    assert time.monotonic() - started <= 0.2 + SLACK  # not the 5 s lock wait
    assert db.calls == 1


def test_no_answer_from_before_an_invalidation_with_a_miss_in_flight(process) -> None:  # noqa: ANN001
    """A fill that read the database before a write is still running when the write's invalidation returns:
    neither the miss waiting for it, nor a lookup made after the write, nor any later one gets its answer."""
    reader, other, writer = process(lock_wait=5.0), process(lock_wait=5.0), process()
    db = Database(hold=True)
    in_flight: list[Any] = []
    holder = threading.Thread(target=lambda: in_flight.append(reader.get_or_set(NAMESPACE, PARAMS, db.read)))
    holder.start()
    assert db.entered.wait(5)  # the holder read "before the write" and is inside its query
    waiting: list[tuple[Any, float]] = []

    def wait_for_the_holder() -> None:
        started = time.monotonic()
        waiting.append((other.get_or_set(NAMESPACE, PARAMS, db.read), time.monotonic() - started))

    waiter = threading.Thread(target=wait_for_the_holder)
    waiter.start()
    time.sleep(0.2)  # the waiter polls the entry behind the holder's lock
    assert not waiting, "the waiter did not wait for the holder"

    db.value = "after the write"
    writer.invalidate([NAMESPACE])
    waiter.join(5)
    assert waiting and waiting[0][0] == {"value": "after the write"}
    assert waiting[0][1] < 2.0, "the waiter waited for a holder computing for the old generation"
    assert holder.is_alive(), "the holder should still be inside its query"
    assert writer.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}

    db.release.set()  # the holder overwrites the entry with its answer from before the write (old generation)
    holder.join(5)
    assert in_flight == [{"value": "before the write"}]  # its request started before the write
    started = time.monotonic()
    for cache_ in (reader, other, writer):
        assert cache_.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}
    # The fill after the write released its lock: nobody waits the 5 s lock wait for the overwritten entry.
    assert time.monotonic() - started < 1.0
    calls = db.calls
    assert reader.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "after the write"}
    assert db.calls == calls, "the current answer is cached again"


def test_the_lock_wait_is_the_apps_cache_lock_wait(app, process, admin_redis, monkeypatch) -> None:  # noqa: ANN001
    assert load_config({"FLASK_ENV": "development"})["CACHE_LOCK_WAIT"] == 0.5
    assert load_config({"FLASK_ENV": "development", "CACHE_LOCK_WAIT": "0.1"})["CACHE_LOCK_WAIT"] == 0.1
    cache_, db = process(lock_wait=None), Database()
    _hold_the_fill_lock(cache_, admin_redis, seconds=10)
    monkeypatch.setitem(app.config, "CACHE_LOCK_WAIT", 0.2)
    started = time.monotonic()
    with app.app_context():
        assert cache_.get_or_set(NAMESPACE, PARAMS, db.read) == {"value": "before the write"}
    assert 0.2 <= time.monotonic() - started <= 0.2 + SLACK


def test_a_lock_wait_of_zero_computes_every_miss_without_a_lock(process, admin_redis) -> None:  # noqa: ANN001
    cache_, db = process(lock_wait=0), Database(seconds=0.2)
    results = _in_threads(3, lambda: cache_.get_or_set(NAMESPACE, PARAMS, db.read))
    assert db.calls == 3 and all(result == {"value": "before the write"} for result, _ in results)
    assert list(admin_redis.scan_iter(match=f"{cache_.prefix}lock:*")) == []
