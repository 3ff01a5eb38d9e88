"""Part 6: cold deploy and no-op re-deploy time per topology (the split lab is the harness's own)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import stats
from ..report import ReportContext, f, spread, table

if TYPE_CHECKING:
    from ..context import Bench
    from ..hosts import BenchLab

NUMBER = 6
# The seed report makes no claim about deploy time.
CLAIM = "(no claim)"


def noop_redeploys(lab: BenchLab, count: int) -> dict[str, Any]:
    """`count` re-deploys of an unchanged inventory: seconds and the summary line of each."""
    runs = [lab.deploy() for _ in range(count)]
    return {"seconds": stats.summarize([seconds for seconds, _ in runs]), "summaries": [line for _, line in runs]}


def single_topology(bench: Bench) -> dict[str, Any]:
    """Build a single-host lab of its own, time its cold deploy and no-op re-deploys, remove it."""
    from ..hosts import BenchLab  # the lab, imported only when a part runs on it

    with tempfile.TemporaryDirectory(prefix="tsbench-single-") as directory:
        lab = BenchLab(f"{bench.lab.name}-single", Path(directory) / "inventory")
        try:
            lab_seconds = lab.up("single")
            cold_seconds, cold_line = lab.deploy()
            return {"topology": "single", "lab_up_seconds": round(lab_seconds, 1), "cold_seconds": round(cold_seconds, 1),
                    "cold_summary": cold_line, "noop": noop_redeploys(lab, bench.settings.noop_redeploys)}
        finally:
            lab.down()


def run(bench: Bench) -> dict[str, Any]:
    """The split lab's cold deploy was timed when the harness built it; add its no-op re-deploys."""
    setup = bench.run["lab"]
    split = {"topology": "split", "lab_up_seconds": setup["lab_up_seconds"], "cold_seconds": setup["deploy_seconds"],
             "cold_summary": setup["deploy_summary"], "cold": not setup["reused"],
             "noop": noop_redeploys(bench.lab, bench.settings.noop_redeploys)}
    rows = [split]
    if bench.settings.single_topology:
        rows.append({**single_topology(bench), "cold": True})
    return {"rows": rows}


def title(data: dict[str, Any]) -> str:
    return "Deploy time"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return []


def section(data: dict[str, Any], context: ReportContext) -> str:
    rows = [[r["topology"], f(r["lab_up_seconds"]), f(r["cold_seconds"]) + ("" if r["cold"] else " (lab reused: not cold)"),
             spread(r["noop"]["seconds"]), "; ".join(sorted(set(r["noop"]["summaries"])))] for r in data["rows"]]
    return table(["topology", "lab up s", "cold deploy s", "no-op re-deploy s", "no-op summary"], rows)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    return "; ".join(f"{r['topology']}: cold {f(r['cold_seconds'], 0)} s, no-op {f(r['noop']['seconds']['p50'], 0)} s"
                     for r in data["rows"])


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    return "no claim"
