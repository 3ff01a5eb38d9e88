"""Part 2: cached (Redis up, warmed) vs uncached (Redis stopped) throughput and p95 per endpoint, through nginx
and Gunicorn, interleaved per repetition; /health (neither database nor cache) is the ceiling of the stack.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import stats
from ..http import wrk
from ..report import ReportContext, against, bars, claimed, f, spread, table, value_range

if TYPE_CHECKING:
    from ..context import Bench

# After Redis comes back, each worker's circuit breaker stays open for its cooldown (5 s) before trying it.
BREAKER_COOLDOWN = 6.0
# The endpoint with neither database nor cache: the stack's ceiling.
CEILING = ("ceiling: /health", "/health")
# An endpoint whose uncached throughput is already this share of the ceiling is bound by the stack (TLS, nginx,
# Gunicorn), not by its query: a cache cannot save much there.
STACK_BOUND = 0.3

NUMBER = 2
# The seed report's claimed range, % of response time saved by the cache.
CLAIMED = (50.0, 80.0)
CLAIM = f"API response times {claimed(CLAIMED)} better with caching"


def endpoints(bench: Bench) -> dict[str, tuple[str, str | None]]:
    """name -> (path, bearer token or None)."""
    employer = bench.employer()
    company = bench.client.request("GET", "/api/companies?per_page=1")["items"][0]["slug"]
    return {CEILING[0]: (CEILING[1], None), "featured jobs": ("/api/jobs/featured", None),
            "categories": ("/api/categories", None), "company profile": (f"/api/companies/{company}", None),
            "search": ("/api/jobs?q=developer&location=berlin", None),
            "employer dashboard": ("/api/employer/dashboard", employer.token)}


def run(bench: Bench) -> dict[str, Any]:
    """Interleave cached/uncached rounds; each round measures every endpoint including the ceiling."""
    targets = endpoints(bench)
    base = bench.lab.lb_url()
    settings = bench.settings
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"cached": [], "uncached": []} for name in targets}

    def measure(mode: str) -> None:
        bench.lab.redis(mode == "cached")
        if mode == "cached":
            time.sleep(BREAKER_COOLDOWN)
        for name, (path, token) in targets.items():
            # Warm-up, discarded: opens connections, fills the cache when it is on.
            wrk(base + path, 1, settings.http_connections, token=token)
            samples[name][mode].append(wrk(base + path, settings.http_seconds, settings.http_connections, token=token))

    done, last_round = 0, 0.0
    try:
        for round_number in range(settings.repetitions):
            if done and not bench.fits(last_round):
                bench.log(f"cache: budget of {settings.part_budget_seconds}s reached after {done} rounds")
                break
            bench.log(f"cache: round {round_number + 1}/{settings.repetitions}")
            round_started = time.monotonic()
            measure("cached")
            measure("uncached")
            last_round, done = time.monotonic() - round_started, done + 1
    finally:
        bench.lab.redis(True)
    ceiling = samples[CEILING[0]]
    ceiling_rps = stats.percentile([r["rps"] for r in ceiling["cached"] + ceiling["uncached"]], 0.5)
    rows = []
    for name, modes in samples.items():
        row: dict[str, Any] = {"endpoint": name, "path": targets[name][0]}
        for mode, runs in modes.items():
            rps = stats.summarize([r["rps"] for r in runs])
            row[mode] = {"rps": rps, "p95_ms": stats.summarize([r["p95_ms"] for r in runs]),
                         "p50_ms": stats.summarize([r["p50_ms"] for r in runs]),
                         "errors": sum(r["errors"] for r in runs), "fraction_of_ceiling": rps["p50"] / ceiling_rps}
        row["throughput_ratio"] = row["cached"]["rps"]["p50"] / row["uncached"]["rps"]["p50"]
        row["p95_reduction_pct"] = stats.reduction(row["cached"]["p95_ms"]["p50"], row["uncached"]["p95_ms"]["p50"])
        rows.append(row)
    return {"rows": rows, "ceiling_rps_p50": ceiling_rps, "connections": settings.http_connections,
            "seconds_per_measurement": settings.http_seconds,
            "rounds": bench.budget_note(settings.repetitions, done)}


def title(data: dict[str, Any]) -> str:
    return "Cached vs uncached, against the ceiling"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return [f"Cache off = Redis stopped on {context.host('cache')}: the app's circuit breaker serves every lookup "
            "from PostgreSQL."]


def _is_ceiling(row: dict[str, Any]) -> bool:
    return row["endpoint"].startswith("ceiling")


def section(data: dict[str, Any], context: ReportContext) -> str:
    rows = []
    for row in data["rows"]:
        cached, uncached = row["cached"], row["uncached"]
        rows.append([row["endpoint"], spread(cached["rps"], 0), spread(uncached["rps"], 0),
                     f(row["throughput_ratio"], 2) + "x", f(cached["p95_ms"]["p50"]), f(uncached["p95_ms"]["p50"]),
                     f(row["p95_reduction_pct"]) + " %", f(cached["fraction_of_ceiling"], 2),
                     f(uncached["fraction_of_ceiling"], 2), cached["errors"] + uncached["errors"]])
    ceiling = next((r.get("path", CEILING[1]) for r in data["rows"] if _is_ceiling(r)), CEILING[1])
    out = [f"wrk, {data['connections']} connections x {data['seconds_per_measurement']} s per measurement; cached = "
           "Redis up and warmed, uncached = Redis stopped (the app's breaker sends every lookup to PostgreSQL). "
           f"Ceiling: {ceiling} at {f(data['ceiling_rps_p50'], 0)} req/s (median of all its runs).\n",
           table(["endpoint", "cached req/s p50 (IQR, min-max)", "uncached req/s", "throughput ratio",
                  "cached p95 ms", "uncached p95 ms", "p95 saved", "cached / ceiling", "uncached / ceiling",
                  "errors"], rows)]
    labels = [r["endpoint"] for r in data["rows"]]
    path = context.plot("cache", lambda ax: bars(ax, labels, {
        "cached": [r["cached"]["rps"]["p50"] for r in data["rows"]],
        "uncached": [r["uncached"]["rps"]["p50"] for r in data["rows"]]}, "requests/s (p50)"))
    out.append(f"\n![cached vs uncached throughput]({path})\n")
    return "\n".join(out)


def _p50_saved(rows: list[dict[str, Any]]) -> list[float]:
    return [stats.reduction(r["cached"]["p50_ms"]["p50"], r["uncached"]["p50_ms"]["p50"]) for r in rows]


def headline(data: dict[str, Any], context: ReportContext) -> str:
    rows = [r for r in data["rows"] if not _is_ceiling(r)]
    return (f"p50 saved {value_range(_p50_saved(rows))}, p95 saved {value_range([r['p95_reduction_pct'] for r in rows])}; "
            f"throughput {f(min(r['throughput_ratio'] for r in rows), 1)}x to "
            f"{f(max(r['throughput_ratio'] for r in rows), 1)}x")


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    """Against the claim at p50 and p95, and why an endpoint falls short where the data says why."""
    # "Response times" read two ways: the typical request (p50) and the slow tail (p95); both are shown.
    rows = [r for r in data["rows"] if not _is_ceiling(r)]
    p50 = _p50_saved(rows)
    text = (f"p50 saved: {against(p50, CLAIMED)}; "
            f"p95 saved: {against([r['p95_reduction_pct'] for r in rows], CLAIMED)}.")
    short = [(r, saved) for r, saved in zip(rows, p50) if saved < CLAIMED[0]]
    stack_bound = [(r, saved) for r, saved in short if r["uncached"]["fraction_of_ceiling"] >= STACK_BOUND]
    other = [(r, saved) for r, saved in short if r["uncached"]["fraction_of_ceiling"] < STACK_BOUND]
    if stack_bound:
        text += (" Short at p50: " + ", ".join(
            f"{r['endpoint']} ({f(saved, 0)} %; uncached already {f(r['uncached']['fraction_of_ceiling'], 2)} of "
            "the ceiling)" for r, saved in stack_bound)
            + ": the uncached answer is a cheap query, so TLS, nginx and Gunicorn (the ceiling) dominate and "
            "the cache can only remove the small database share.")
    if other:
        text += (" Short at p50 without being bound by the stack: " + ", ".join(
            f"{r['endpoint']} ({f(saved, 0)} %, cached p50 {f(r['cached']['p50_ms']['p50'])} ms)" for r, saved in other)
            + ": not explained by this data; see the part's spread.")
    return text
