"""Redis at its memory limit, under the eviction policy the deploy configures (redis_maxmemory_policy).

The app keeps keys without a TTL next to its cache entries: a generation counter per cache namespace and the
view-count buffer. Filling the cache must evict cache entries only (they all have a TTL), so an invalidation
still hides what it invalidated and every buffered view reaches PostgreSQL. When memory is full of keys
without a TTL, Redis refuses writes with OOM: a refused cache write is a miss served from PostgreSQL, a
refused view is written to PostgreSQL directly, and neither is an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from app_helpers import app_config, counting_statements, make_employer, post_job
from app_services import RedisServer

from talentsphere import create_app
from roles.registry import defaults as role_defaults

#: The policy every deployed Redis (and the Render Key Value) runs with.
DEPLOYED_POLICY = role_defaults()["redis_maxmemory_policy"]
#: Room left for cache entries above what the test's own keys use: a few hundred 8 KB entries overflow it.
HEADROOM = 1024 * 1024
FILL_ENTRIES = 600
FILL_VALUE = "x" * 8192


@pytest.fixture
def own_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis of the test's own (its memory is filled on purpose), with the deployed eviction policy."""
    if not redis_server.is_ours:
        pytest.skip("TS_TEST_REDIS_URL is an external server; this test fills a Redis of its own")
    server = RedisServer.start()
    try:
        redis.Redis.from_url(server.admin_url).config_set("maxmemory-policy", DEPLOYED_POLICY)
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(own_redis: RedisServer) -> redis.Redis:
    """An admin connection to that Redis, to set its memory limit and look at the app's keys."""
    return redis.Redis.from_url(own_redis.admin_url)


@pytest.fixture
def small_app(prepared, app_env: dict[str, str], own_redis: RedisServer):  # noqa: ANN001, ANN201
    """The app on the session's database and the test's own Redis."""
    application = create_app(app_config(app_env, REDIS_URL=own_redis.app_url))
    yield application
    application.extensions["talentsphere.db"].engine.dispose()


def _views(engine, job_id: int) -> int:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT view_count FROM jobs WHERE id = %s", (job_id,)).scalar()


def _limit_memory_to_what_is_used_plus(admin: redis.Redis, headroom: int) -> None:
    admin.config_set("maxmemory", admin.info("memory")["used_memory"] + headroom)


def _fill_memory_with_keys_without_a_ttl(admin: redis.Redis) -> None:
    """Leave Redis over maxmemory with nothing evictable: it refuses every write that needs memory."""
    admin.set("filler-without-ttl", "x" * HEADROOM)
    admin.config_set("maxmemory", admin.info("memory")["used_memory"] // 2)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        admin.set("ts:probe", "1", ex=60)


def test_filling_the_cache_evicts_entries_but_keeps_generation_counters_and_the_view_buffer(
        small_app, admin: redis.Redis) -> None:  # noqa: ANN001
    client = small_app.test_client()
    cache = small_app.extensions["talentsphere.cache"]
    views = small_app.extensions["talentsphere.views"]
    engine = small_app.extensions["talentsphere.db"].engine
    slug = f"co-{uuid.uuid4().hex[:10]}"
    # A lookup before the company exists caches "not found" at generation 0; creating it invalidates that.
    assert client.get(f"/api/companies/{slug}").status_code == 404
    employer = make_employer(client, slug=slug)
    assert client.get(f"/api/companies/{slug}").status_code == 200
    job = post_job(client, employer)
    for _ in range(5):
        assert client.get(f"/api/jobs/{job['id']}").status_code == 200
    counter = cache.gen_key(f"company_profile:{slug}")
    generation = admin.get(counter)
    assert generation is not None and admin.ttl(counter) == -1  # no TTL: only allkeys-* could evict it
    _limit_memory_to_what_is_used_plus(admin, HEADROOM)

    for index in range(FILL_ENTRIES):
        cache.get_or_set("job_search", {"fill": index}, lambda: FILL_VALUE)

    assert admin.info("stats")["evicted_keys"] > 0, "the fill did not reach maxmemory: nothing was evicted"
    assert admin.get(counter) == generation
    assert views.pending() == {job["id"]: 5}
    profile = client.get(f"/api/companies/{slug}")
    assert profile.status_code == 200 and profile.get_json()["open_jobs_count"] == 1
    views.flush()
    assert _views(engine, job["id"]) == 5


def test_a_cache_write_refused_for_memory_is_a_miss_served_from_postgresql(
        small_app, admin: redis.Redis) -> None:  # noqa: ANN001
    client = small_app.test_client()
    engine = small_app.extensions["talentsphere.db"].engine
    _fill_memory_with_keys_without_a_ttl(admin)

    first = client.get("/api/categories")
    with counting_statements(engine) as statements:
        second = client.get("/api/categories")

    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json() and first.get_json()["items"]
    assert statements, "the second request was not served from PostgreSQL"
    assert list(admin.scan_iter(match="ts:cache:*")) == []


def test_a_view_refused_for_memory_is_written_directly_and_buffered_ones_still_flush(
        small_app, admin: redis.Redis) -> None:  # noqa: ANN001
    client = small_app.test_client()
    engine = small_app.extensions["talentsphere.db"].engine
    with engine.connect() as conn:
        job_id = conn.exec_driver_sql("SELECT min(id) FROM jobs WHERE status = 'published'").scalar()
    before = _views(engine, job_id)
    assert client.get(f"/api/jobs/{job_id}").status_code == 200  # buffered while Redis has room
    _fill_memory_with_keys_without_a_ttl(admin)

    assert client.get(f"/api/jobs/{job_id}").status_code == 200  # HINCRBY refused

    assert _views(engine, job_id) == before + 1
    small_app.extensions["talentsphere.views"].flush()  # RENAME, HGETALL and DEL need no memory
    assert _views(engine, job_id) == before + 2


def test_a_refused_write_does_not_take_redis_out_of_service(small_app, admin: redis.Redis) -> None:  # noqa: ANN001
    client = small_app.test_client()
    _fill_memory_with_keys_without_a_ttl(admin)
    assert client.get("/api/categories").status_code == 200  # its cache write is refused

    # Redis answered (it is reachable and fast): the breaker stays closed and readiness still reports it ok.
    assert not small_app.extensions["talentsphere.cache"].breaker.is_open
    assert client.get("/health/ready").get_json() == {"status": "ok", "database": "ok", "redis": "ok",
                                                      "release": small_app.config["RELEASE_ID"]}
