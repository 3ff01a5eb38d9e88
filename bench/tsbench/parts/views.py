"""Part 4: view counts, the app's buffered bulk flush vs one UPDATE per view: statements and time."""

from __future__ import annotations

from typing import Any

from .. import stats
from ..context import Bench
from ..remote import source

JOBS_VIEWED = 500


def run(bench: Bench) -> dict[str, Any]:
    """Interleaved bulk / per-view rounds on app1 with the app's own ViewCounter and UPDATE."""
    jobs = [int(v) for v in bench.lab.psql(
        f"SELECT id FROM jobs WHERE status = 'published' ORDER BY id LIMIT {JOBS_VIEWED};").split()]
    raw = bench.lab.app_python(source("view_counts"), {"views": bench.settings.views, "jobs": jobs,
                                                       "repetitions": bench.settings.repetitions,
                                                       "warmup": bench.settings.warmup})
    bulk, per_view = raw["bulk"], raw["per_view"]
    return {"views": bench.settings.views, "jobs": len(jobs),
            "bulk": {"seconds": stats.summarize(bulk["seconds"]), "record_seconds": stats.summarize(bulk["record_seconds"]),
                     "flush_seconds": stats.summarize(bulk["flush_seconds"]), "statements": max(bulk["statements"])},
            "per_view": {"seconds": stats.summarize(per_view["seconds"]), "statements": max(per_view["statements"])},
            "speedup_p50": stats.speedup(stats.percentile(bulk["seconds"], 0.5), stats.percentile(per_view["seconds"], 0.5)),
            "db_time_speedup_p50": stats.speedup(stats.percentile(bulk["flush_seconds"], 0.5),
                                                 stats.percentile(per_view["seconds"], 0.5))}
