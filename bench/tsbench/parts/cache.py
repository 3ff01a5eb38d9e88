"""Part 2: cached (Redis up, warmed) vs uncached (Redis stopped) throughput and p95 per endpoint, through nginx
and Gunicorn, interleaved per repetition; /health (neither database nor cache) is the ceiling of the stack.
"""

from __future__ import annotations

import time
from typing import Any

from .. import stats
from ..context import Bench
from ..http import wrk

# After Redis comes back, each worker's circuit breaker stays open for its cooldown (5 s) before trying it.
BREAKER_COOLDOWN = 6.0


def endpoints(bench: Bench) -> dict[str, tuple[str, str | None]]:
    """name -> (path, bearer token or None)."""
    employer = bench.employer()
    company = bench.client.request("GET", "/api/companies?per_page=1")["items"][0]["slug"]
    return {"ceiling: /health": ("/health", None), "featured jobs": ("/api/jobs/featured", None),
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
    ceiling = samples["ceiling: /health"]
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
