"""Part 3: the employer dashboard, uncached (Redis stopped): statements per request and latency as the
company's applications grow. The count must stay constant; the data only grows, so steps run in order.
"""

from __future__ import annotations

from typing import Any

from .. import stats
from ..context import Bench
from ..data import grow_applications
from ..http import wrk

STATEMENT_COUNTER = "talentsphere_db_statements_total"
COUNTED_REQUESTS = 10


def run(bench: Bench) -> dict[str, Any]:
    """One row per step: applications, statements per request, latency summary over repetitions."""
    employer = bench.employer()
    url = bench.lab.lb_url() + "/api/employer/dashboard"
    steps = []
    bench.lab.redis(False)
    try:
        for target in bench.settings.dashboard_steps:
            have = grow_applications(bench.lab, employer, target)
            bench.log(f"dashboard: {have} applications")
            bench.client.request("GET", "/api/employer/dashboard", token=employer.token)  # warm-up
            before = bench.app_metric(STATEMENT_COUNTER)
            for _ in range(COUNTED_REQUESTS):
                bench.client.request("GET", "/api/employer/dashboard", token=employer.token)
            per_request = (bench.app_metric(STATEMENT_COUNTER) - before) / COUNTED_REQUESTS
            runs = [wrk(url, bench.settings.http_seconds, 1, threads=1, token=employer.token)
                    for _ in range(bench.settings.repetitions)]
            steps.append({"applications": have, "statements_per_request": per_request,
                          "p50_ms": stats.summarize([r["p50_ms"] for r in runs]),
                          "p95_ms": stats.summarize([r["p95_ms"] for r in runs]),
                          "errors": sum(r["errors"] for r in runs)})
    finally:
        bench.lab.redis(True)
    counts = {step["statements_per_request"] for step in steps}
    return {"steps": steps, "constant_statement_count": len(counts) == 1, "company_jobs": 1000}
