"""Part 3: the employer dashboard, uncached (Redis stopped): statements per request and latency as the
company's applications grow. The count must stay constant; the data only grows, so steps run in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import stats
from ..data import EMPLOYER_JOBS, grow_applications
from ..http import wrk
from ..report import ReportContext, claimed, count_word, f, spread, table

if TYPE_CHECKING:
    from ..context import Bench

STATEMENT_COUNTER = "talentsphere_db_statements_total"
COUNTED_REQUESTS = 10
# Latency of one request at a time: one wrk connection (and thread).
CONNECTIONS = 1

NUMBER = 3
# The seed report's claimed range, % faster than its pre-optimization dashboard (which does not exist here).
CLAIMED = (60.0, 85.0)
CLAIM = f"Dashboard loading {claimed(CLAIMED)} faster with optimized queries"


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
            runs = [wrk(url, bench.settings.http_seconds, CONNECTIONS, threads=1, token=employer.token)
                    for _ in range(bench.settings.repetitions)]
            steps.append({"applications": have, "statements_per_request": per_request,
                          "p50_ms": stats.summarize([r["p50_ms"] for r in runs]),
                          "p95_ms": stats.summarize([r["p95_ms"] for r in runs]),
                          "errors": sum(r["errors"] for r in runs)})
    finally:
        bench.lab.redis(True)
    counts = {step["statements_per_request"] for step in steps}
    return {"steps": steps, "constant_statement_count": len(counts) == 1, "company_jobs": EMPLOYER_JOBS,
            "connections": CONNECTIONS}


def title(data: dict[str, Any]) -> str:
    return "Dashboard: statements and latency as applications grow"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return [f"Not compared in part {NUMBER}: the seed's \"before\" dashboard (N+1 queries) does not exist in this "
            "repository, so the part shows how the optimized code scales as applications grow."]


def section(data: dict[str, Any], context: ReportContext) -> str:
    rows = [[f(s["applications"]), f(s["statements_per_request"], 1), spread(s["p50_ms"]), spread(s["p95_ms"]),
             s["errors"]] for s in data["steps"]]
    constant = "constant" if data["constant_statement_count"] else "NOT constant"
    connections = data.get("connections", CONNECTIONS)
    out = [f"Uncached (Redis stopped), {count_word(connections)} connection{'' if connections == 1 else 's'}, the "
           f"bench employer's company ({data['company_jobs']} jobs). Statements per request (app's own counter, incl. "
           f"authentication): **{constant}**.\n",
           table(["applications", "statements / request", "latency p50 ms", "latency p95 ms", "errors"], rows)]
    path = context.plot("dashboard", lambda ax: (
        ax.plot([s["applications"] for s in data["steps"]], [s["p50_ms"]["p50"] for s in data["steps"]], "o-",
                label="p50"),
        ax.plot([s["applications"] for s in data["steps"]], [s["p95_ms"]["p50"] for s in data["steps"]], "s-",
                label="p95"),
        ax.set_xscale("log"), ax.set_xlabel("applications"), ax.set_ylabel("ms"), ax.legend()))
    out.append(f"\n![dashboard latency]({path})\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    counts = sorted({s["statements_per_request"] for s in data["steps"]})
    first, last = data["steps"][0], data["steps"][-1]
    return (f"{'constant' if data['constant_statement_count'] else 'varying'} {', '.join(f(c, 1) for c in counts)} "
            f"statements/request; p50 {f(first['p50_ms']['p50'])} ms at {f(first['applications'])} "
            f"to {f(last['p50_ms']['p50'])} ms at {f(last['applications'])} applications "
            "(no before-optimization app to compare with)")


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    constant = "constant" if data["constant_statement_count"] else "NOT constant"
    return ("not comparable: the seed's pre-optimization dashboard does not exist here, so no \"% faster\" "
            f"can be measured; what can be is that the statement count stays {constant} as applications grow.")
