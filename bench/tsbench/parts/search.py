"""Part 1: job search with the app's indexes (`talentsphere.indexes`) vs without, same data, at several sizes;
SQL level and HTTP (cache off).

SQL level: the app's own `search_jobs` on an app host, A/B interleaved per repetition; "without" drops the
indexes inside a transaction that is rolled back. HTTP level: wrk through nginx with Redis stopped, in
blocks A (with), B (indexes dropped for real), A again after `talentsphere optimize-db` re-created them:
rebuilding every index per repetition would cost minutes at the largest size, so HTTP is A-B-A, not interleaved.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from talentsphere.indexes import INDEXES

from .. import stats
from ..data import current_jobs, reseed
from ..http import wrk
from ..remote import source
from ..report import ReportContext, against, bars, claimed, f, spread, table
from ..settings import BENCH_HOSTS

if TYPE_CHECKING:
    from ..context import Bench

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

NUMBER = 1
# The seed report's claimed ranges, % of time saved by the indexes: database queries and job search (HTTP).
CLAIMED = {"sql": (70.0, 90.0), "http": (40.0, 70.0)}
CLAIM = (f"Database queries {claimed(CLAIMED['sql'])} faster due to indexing; "
         f"job search {claimed(CLAIMED['http'])} faster")


def sql_level(bench: Bench) -> dict[str, Any]:
    """A/B interleaved timings of the app's search function, with plans and statement counts."""
    raw = bench.lab.app_python(source("app_queries"), {
        "scenarios": {name: {"kind": "search", "filters": filters} for name, filters in SCENARIOS.items()},
        "variants": ["with", "without"], "repetitions": bench.settings.repetitions,
        "warmup": bench.settings.warmup}, host=BENCH_HOSTS["app"], owner=True)  # "without" drops indexes: DDL
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
    return {"rows": rows, "host": BENCH_HOSTS["app"]}


# Run on an app host at the largest size: EXPLAIN (ANALYZE, BUFFERS) of each statement `search_jobs` runs per
# scenario, so the report shows which plan gave the times (the top-level summary in `sql_level` has no rows).
EXPLAIN_PROGRAM = """
import json
from decimal import Decimal
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session
from talentsphere.config import load_config
from talentsphere.search import JobFilters, search_jobs

engine = create_engine(load_config()["DATABASE_URL"])
captured = []
event.listen(engine, "before_cursor_execute", lambda c, cur, statement, parameters, ctx, many:
             captured.append((statement, parameters)))
out = {}
for name, filters in ARGS["scenarios"].items():
    filters = {k: Decimal(str(v)) if k in ("salary_min", "salary_max") else v for k, v in filters.items()}
    with Session(engine) as session:
        search_jobs(session, JobFilters(**filters))  # warm-up
        captured.clear()
        search_jobs(session, JobFilters(**filters))
        statements = list(captured)
        cursor = session.connection().connection.dbapi_connection.cursor()
        plans = []
        for statement, parameters in statements:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0][0]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            text = [row[0] for row in cursor.fetchall()]
            top = plan["Plan"]
            plans.append({"statement": " ".join(statement.split())[:160], "top_node": top["Node Type"],
                          "rows": top.get("Actual Rows"), "execution_ms": round(plan["Execution Time"], 3),
                          "shared_hit_blocks": top.get("Shared Hit Blocks", 0),
                          "shared_read_blocks": top.get("Shared Read Blocks", 0),
                          "temp_written_blocks": top.get("Temp Written Blocks", 0),
                          "text": text[:ARGS["max_lines"]]})
        session.rollback()
    out[name] = plans
print(json.dumps(out))
"""
EXPLAIN_MAX_LINES = 40


def explain_plans(bench: Bench) -> dict[str, list[dict[str, Any]]]:
    """Each scenario's statements with EXPLAIN (ANALYZE, BUFFERS): top node, rows, time, buffers, trimmed text."""
    return bench.lab.app_python(EXPLAIN_PROGRAM, {"scenarios": SCENARIOS, "max_lines": EXPLAIN_MAX_LINES},
                                host=BENCH_HOSTS["app"])


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
        # A size is one unit: seeding, SQL and HTTP levels. The gain is expected to grow with the table, so every
        # size is wanted: one is skipped only once the budget is already spent (the report shows the part's time
        # against it).
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
        size: dict[str, Any] = {"jobs": jobs, "seeded": seeded, "sql": sql}
        if jobs == max(bench.settings.search_sizes):
            bench.log(f"search: EXPLAIN ANALYZE of each scenario at {jobs} jobs")
            size["explain"] = explain_plans(bench)
        bench.log(f"search: HTTP level at {jobs} jobs")
        size["http"] = http_level(bench)
        sizes.append(size)
    done = sum(1 for size in sizes if "skipped" not in size)
    return {"sizes": sizes, "scenarios": SCENARIOS, "index_count": len(INDEXES),
            "rounds": bench.budget_note(len(bench.settings.search_sizes), done, unit="sizes")}


def index_count(data: dict[str, Any]) -> int:
    """How many indexes "without" drops: as the run recorded it, or (older results files) as many as the part
    drops today."""
    return int(data.get("index_count", len(INDEXES)))


def title(data: dict[str, Any]) -> str:
    return f"Search: with vs without the {index_count(data)} indexes"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return [f"Without indexes = the {index_count(data)} indexes of `talentsphere.indexes` dropped in the same "
            "database: at SQL level inside a transaction that is rolled back (DROP INDEX is transactional), over "
            "HTTP for real, re-created by `talentsphere optimize-db` afterwards."]


def _statements(rows: list[dict[str, Any]]) -> str:
    counts = sorted({r["statements"] for r in rows})
    return f"{'/'.join(f(c) for c in counts)} statement{'' if counts == [1] else 's'}"


def section(data: dict[str, Any], context: ReportContext) -> str:
    out = []
    labels, with_ms, without_ms = [], [], []
    for size in data["sizes"]:
        if "skipped" in size:
            out.append(f"**{f(size['jobs'])} jobs:** not measured ({size['skipped']}).\n")
            continue
        sql = size["sql"]
        out.append(f"**{f(size['jobs'])} jobs, SQL level** (the app's `search_jobs`, {_statements(sql['rows'])}, on "
                   f"{sql.get('host', context.host('app'))}; median ms with IQR and min-max over the interleaved "
                   "repetitions):\n")
        rows = []
        for row in sql["rows"]:
            rows.append([row["scenario"], spread(row["with_ms"], 2), spread(row["without_ms"], 2),
                         f(row["reduction_p50_pct"]) + " %", f(row["speedup_p50"], 2) + "x",
                         ", ".join(row["plan_with"]["indexes"]) or "none", row["plan_without"]["temp_written_blocks"]])
            labels.append(f"{row['scenario']}\n{size['jobs'] // 1000}k")
            with_ms.append(row["with_ms"]["p50"])
            without_ms.append(row["without_ms"]["p50"])
        out.append(table(["scenario", "with indexes p50 ms", "without p50 ms", "time saved", "speedup",
                          "indexes used", "temp blocks w/o"], rows))
        http = size["http"]
        out.append(f"\n**{f(size['jobs'])} jobs, HTTP** (nginx + Gunicorn, Redis stopped, wrk {http['connections']} "
                   f"connections x {http['seconds_per_measurement']} s; with = both A blocks of A-B-A; rebuilding "
                   f"the indexes took {http['index_rebuild_seconds']} s):\n")
        out.append(table(["scenario", "with p50 / p95 ms (A1; A2)", "without p50 / p95 ms", "time saved (p50)",
                          "errors w/o"],
                         [[r["scenario"], "; ".join(f"{f(a['p50_ms'])} / {f(a['p95_ms'])}" for a in r["with"]),
                           f"{f(r['without']['p50_ms'])} / {f(r['without']['p95_ms'])}",
                           f(r["reduction_p50_pct"]) + " %", r["without"]["errors"]] for r in http["rows"]]))
        if size.get("explain"):
            out.append(f"\n**{f(size['jobs'])} jobs, plans** (EXPLAIN (ANALYZE, BUFFERS) of each statement of "
                       "`search_jobs`, with indexes; full text in the results file):\n")
            out.append(table(["scenario", "statement", "top node", "rows", "execution ms", "shared blocks hit",
                              "temp blocks written"],
                             [[name, i + 1, plan["top_node"], f(plan["rows"]), f(plan["execution_ms"], 2),
                               f(plan["shared_hit_blocks"]), f(plan["temp_written_blocks"])]
                              for name, plans in size["explain"].items() for i, plan in enumerate(plans)]))
    if labels:
        path = context.plot("search", lambda ax: bars(ax, labels, {"with indexes": with_ms, "without": without_ms},
                                                      "p50 ms (log)", log=True))
        out.append(f"\n![search p50 with vs without indexes]({path})\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    done = [size for size in data["sizes"] if "sql" in size]
    if not done:
        return "-"
    size = done[-1]
    sql = [r["reduction_p50_pct"] for r in size["sql"]["rows"]]
    http = [r["reduction_p50_pct"] for r in size["http"]["rows"]]
    return (f"at {f(size['jobs'])} jobs: SQL time saved {f(min(sql), 0)} to {f(max(sql), 0)} %, HTTP p50 saved "
            f"{f(min(http), 0)} to {f(max(http), 0)} %")


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    """Each size against both claims, and why a size falls short where the data says why."""
    parts = []
    for size in (s for s in data["sizes"] if "sql" in s):
        sql = against([r["reduction_p50_pct"] for r in size["sql"]["rows"]], CLAIMED["sql"])
        http = against([r["reduction_p50_pct"] for r in size["http"]["rows"]], CLAIMED["http"])
        parts.append(f"{f(size['jobs'])} jobs: queries {sql}; HTTP {http}")
    small = [s for s in data["sizes"] if "sql" in s and any(
        r["reduction_p50_pct"] < CLAIMED["sql"][0] for r in s["sql"]["rows"])]
    why = ""
    if small:
        without = [r["without_ms"]["p50"] for r in small[0]["sql"]["rows"]]
        why = (f" Where it falls short the table is small: without indexes PostgreSQL reads all "
               f"{f(small[0]['jobs'])} jobs in {f(min(without), 0)} to {f(max(without), 0)} ms, so an index has "
               "little to save; the gain grows with the table.")
    return "; ".join(parts) + "." + why
