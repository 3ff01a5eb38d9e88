"""Part 4: view counts, the app's buffered bulk flush vs one UPDATE per view: statements and time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import stats
from ..remote import source
from ..report import ReportContext, f, spread, table
from ..settings import BENCH_HOSTS

if TYPE_CHECKING:
    from ..context import Bench

JOBS_VIEWED = 500
NUMBER = 4
# The seed report's claim (it gives no figure).
CLAIM = "Bulk operations for view count updates (no figure given)"


def run(bench: Bench) -> dict[str, Any]:
    """Interleaved bulk / per-view rounds on app1 with the app's own ViewCounter and UPDATE."""
    jobs = [int(v) for v in bench.lab.psql(
        f"SELECT id FROM jobs WHERE status = 'published' ORDER BY id LIMIT {JOBS_VIEWED};").split()]
    raw = bench.lab.app_python(source("view_counts"), {"views": bench.settings.views, "jobs": jobs,
                                                       "repetitions": bench.settings.repetitions,
                                                       "warmup": bench.settings.warmup}, host=BENCH_HOSTS["app"])
    bulk, per_view = raw["bulk"], raw["per_view"]
    return {"views": bench.settings.views, "jobs": len(jobs), "host": BENCH_HOSTS["app"],
            "bulk": {"seconds": stats.summarize(bulk["seconds"]), "record_seconds": stats.summarize(bulk["record_seconds"]),
                     "flush_seconds": stats.summarize(bulk["flush_seconds"]), "statements": max(bulk["statements"])},
            "per_view": {"seconds": stats.summarize(per_view["seconds"]), "statements": max(per_view["statements"])},
            "speedup_p50": stats.speedup(stats.percentile(bulk["seconds"], 0.5), stats.percentile(per_view["seconds"], 0.5)),
            "db_time_speedup_p50": stats.speedup(stats.percentile(bulk["flush_seconds"], 0.5),
                                                 stats.percentile(per_view["seconds"], 0.5))}


def title(data: dict[str, Any]) -> str:
    return "View counts: bulk flush vs one UPDATE per view"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return [f"Not compared in part {NUMBER}: the seed's \"before\" application (no bulk writes) does not exist in "
            "this repository, so the bulk flush is compared with the naive alternative, one UPDATE per view."]


def section(data: dict[str, Any], context: ReportContext) -> str:
    bulk, per_view = data["bulk"], data["per_view"]
    rows = [["bulk (HINCRBY per view, then a flush)", bulk["statements"], spread(bulk["seconds"], 3),
             spread(bulk["flush_seconds"], 3)],
            ["one UPDATE per view", per_view["statements"], spread(per_view["seconds"], 3), spread(per_view["seconds"], 3)]]
    host = data.get("host", context.host("app"))
    return (f"{f(data['views'])} views over {data['jobs']} jobs, on {host} with the app's own ViewCounter.\n\n"
            + table(["path", "SQL statements", "total s", "PostgreSQL part s"], rows)
            + f"\nTotal time speedup {f(data['speedup_p50'], 1)}x; database-side {f(data['db_time_speedup_p50'], 0)}x.\n")


def headline(data: dict[str, Any], context: ReportContext) -> str:
    return (f"{data['bulk']['statements']} vs {data['per_view']['statements']} statements; "
            f"{f(data['speedup_p50'], 1)}x total, {f(data['db_time_speedup_p50'], 0)}x database time")


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    return "no figure claimed; the bulk path is confirmed (see the statements and times)"
