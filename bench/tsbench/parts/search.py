"""Part 1: job search with the 38 indexes vs without, same data, at several sizes; SQL level and HTTP (cache off).

SQL level: the app's own `search_jobs` on an app host, A/B interleaved per repetition; "without" drops the
indexes inside a transaction that is rolled back. HTTP level: wrk through nginx with Redis stopped, in
blocks A (with), B (indexes dropped for real), A again after `talentsphere optimize-db` re-created them:
rebuilding 38 indexes per repetition would cost minutes at 1M jobs, so HTTP is A-B-A, not interleaved.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from talentsphere.indexes import INDEXES

from .. import stats
from ..context import Bench
from ..data import current_jobs, reseed
from ..http import wrk
from ..remote import source

SCENARIOS: dict[str, dict[str, Any]] = {
    "fulltext": {"q": "python developer"},
    "fulltext+filters": {"q": "engineer", "location": "berlin", "employment_type": "full_time",
                         "experience_level": "senior"},
    "filters only": {"employment_type": "contract", "experience_level": "senior", "salary_min": 100000,
                     "sort": "salary"},
    "newest (no filter)": {},
}
# Latency, not throughput: two connections keep the app busy without queueing behind each other.
HTTP_CONNECTIONS = 2


def sql_level(bench: Bench) -> dict[str, Any]:
    """A/B interleaved timings of the app's search function, with plans and statement counts."""
    raw = bench.lab.app_python(source("app_queries"), {
        "scenarios": {name: {"kind": "search", "filters": filters} for name, filters in SCENARIOS.items()},
        "variants": ["with", "without"], "repetitions": bench.settings.repetitions,
        "warmup": bench.settings.warmup})
    rows = []
    for name, variants in raw.items():
        with_ms = [s * 1000 for s in variants["with"]["seconds"]]
        without_ms = [s * 1000 for s in variants["without"]["seconds"]]
        rows.append({"scenario": name, "with_ms": stats.summarize(with_ms), "without_ms": stats.summarize(without_ms),
                     "speedup_p50": stats.speedup(stats.percentile(with_ms, 0.5), stats.percentile(without_ms, 0.5)),
                     "reduction_p50_pct": stats.reduction(stats.percentile(with_ms, 0.5),
                                                          stats.percentile(without_ms, 0.5)),
                     "statements": variants["with"]["statements"],
                     "plan_with": variants["with"]["plan"], "plan_without": variants["without"]["plan"]})
    return {"rows": rows}


def _drop_indexes(bench: Bench) -> None:
    bench.lab.psql("".join(f"DROP INDEX IF EXISTS {spec.name};\n" for spec in INDEXES))


def http_level(bench: Bench) -> dict[str, Any]:
    """A-B-A wrk blocks through nginx with the cache off (Redis stopped)."""
    base = bench.lab.lb_url()
    seconds = bench.settings.http_seconds

    def block() -> dict[str, dict[str, Any]]:
        out = {}
        for name, filters in SCENARIOS.items():
            url = f"{base}/api/jobs?{urllib.parse.urlencode(filters)}"
            wrk(url, 1, HTTP_CONNECTIONS)  # warm-up: connections, plans, OS page cache
            out[name] = wrk(url, seconds, HTTP_CONNECTIONS)
        return out

    bench.lab.redis(False)
    try:
        first = block()
        _drop_indexes(bench)
        try:
            without = block()
        finally:
            rebuild_started = time.monotonic()
            bench.lab.talentsphere("optimize-db")
            rebuild_seconds = time.monotonic() - rebuild_started
        second = block()
    finally:
        bench.lab.redis(True)
    rows = []
    for name in SCENARIOS:
        with_p50 = [first[name]["p50_ms"], second[name]["p50_ms"]]
        rows.append({"scenario": name, "with": [first[name], second[name]], "without": without[name],
                     "reduction_p50_pct": stats.reduction(stats.percentile(with_p50, 0.5), without[name]["p50_ms"]),
                     "speedup_p50": stats.speedup(stats.percentile(with_p50, 0.5), without[name]["p50_ms"])})
    return {"rows": rows, "index_rebuild_seconds": round(rebuild_seconds, 1), "connections": HTTP_CONNECTIONS,
            "seconds_per_measurement": seconds}


def run(bench: Bench) -> dict[str, Any]:
    """Every size in order; sizes left when the part's budget is spent are recorded as skipped."""
    sizes = []
    for jobs in bench.settings.search_sizes:
        # A size is one unit: seeding, SQL and HTTP levels. The sizes the issue names are all wanted, so a size
        # is skipped only once the budget is already spent (the report shows the part's time against it).
        if bench.elapsed() > bench.settings.part_budget_seconds:
            sizes.append({"jobs": jobs, "skipped": f"part budget of {bench.settings.part_budget_seconds}s spent"})
            continue
        seeded = None
        if current_jobs(bench.lab) != jobs:
            bench.log(f"search: seeding {jobs} jobs")
            seeded = reseed(bench.lab, jobs)
            bench.forget_employer()
        bench.log(f"search: SQL level at {jobs} jobs")
        sql = sql_level(bench)
        bench.log(f"search: HTTP level at {jobs} jobs")
        http = http_level(bench)
        sizes.append({"jobs": jobs, "seeded": seeded, "sql": sql, "http": http})
    done = sum(1 for size in sizes if "skipped" not in size)
    return {"sizes": sizes, "scenarios": SCENARIOS,
            "rounds": bench.budget_note(len(bench.settings.search_sizes), done, unit="sizes")}
