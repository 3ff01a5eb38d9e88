"""Redis cache: the documented TTLs, invalidation on writes, clear_all without KEYS, ACL-limited app user."""

from __future__ import annotations

import pytest
import redis
from app_helpers import counting_statements, make_employer, post_job

from talentsphere.cache import TTLS, cache, invalidate_cache


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


def test_a_new_job_invalidates_featured_search_company_and_dashboard(client, employer) -> None:  # noqa: ANN001
    slug = employer.company["slug"]
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

