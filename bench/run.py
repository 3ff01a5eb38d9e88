"""`make bench` / `make bench QUICK=1`: build the bench lab, run every part, write results and BENCHMARKS.md.

    .venv/bin/python bench/run.py [--quick] [--parts search,cache,...] [--lab-name bench] [--keep-lab]
    .venv/bin/python bench/run.py --report-only [RESULTS.json]     # regenerate BENCHMARKS.md and the plots

The lab is removed at the end even when a part fails (unless --keep-lab). Each part's failure is recorded in
the results with its error, and the other parts still run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tsbench import machine, report, results
from tsbench.context import Bench
from tsbench.data import current_jobs, reseed
from tsbench.hosts import BenchLab
from tsbench.machine import IDLE_SAMPLE_SECONDS, QUIET_LOAD
from tsbench.parts import PARTS
from tsbench.settings import BENCH_HOSTS, BENCH_VARS, FULL, QUICK

BASE_SIZE_PARTS = ("views", "cache", "dashboard", "load")


def run_part(bench: Bench, name: str) -> None:
    """Run one part, recording its data or its failure, its duration and the load average around it."""
    # Measured while the bench generates no load: what else (other work, the lab's background) uses the CPU.
    entry: dict = {"load_average_before": machine.load_average(),
                   "idle_busy_pct_before": machine.busy_percent(IDLE_SAMPLE_SECONDS)}
    bench.start_part()
    started = time.monotonic()
    bench.log(f"part {name}: start (load {entry['load_average_before']})")
    try:
        entry["data"] = PARTS[name].run(bench)
        entry["status"] = "ok"
    except Exception as error:  # one part's failure must not cost the others their results
        entry["status"] = "failed"
        entry["error"] = f"{type(error).__name__}: {error}"[-3000:]
        entry["traceback"] = traceback.format_exc()[-4000:]
        bench.log(f"part {name}: FAILED: {entry['error'][:500]}")
    entry["seconds"] = round(time.monotonic() - started, 1)
    entry["load_average_after"] = machine.load_average()
    bench.run["parts"][name] = entry
    results.write(bench.run)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny data, short runs (~minutes)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    parser.add_argument("--lab-name", default="bench", help="the lab the harness builds and removes")
    parser.add_argument("--inventory-dir", type=Path, help="keep the lab's inventory here (default: a temp dir)")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up (development only)")
    parser.add_argument("--report-only", nargs="?", const="latest", metavar="RESULTS.json",
                        help="only regenerate BENCHMARKS.md and plots from a results file")
    args = parser.parse_args()
    if args.report_only:
        path = results.latest() if args.report_only == "latest" else Path(args.report_only)
        print(report.generate(results.load(path), path))
        return 0
    names = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    settings = QUICK if args.quick else FULL
    run = results.new_run(settings.quick, machine.describe())
    # Recorded so that the report states what this run used, even after the constants change.
    run["settings"] = dataclasses.asdict(settings)
    run["machine"]["idle_busy_pct"] = machine.busy_percent(IDLE_SAMPLE_SECONDS)
    run["machine"]["idle_sample_seconds"] = IDLE_SAMPLE_SECONDS
    if run["machine"]["load_average"][0] >= QUIET_LOAD:
        print(f"warning: load average {run['machine']['load_average']} is not below {QUIET_LOAD}: the machine is "
              "shared right now and timings will be noisy", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tsbench-") as scratch:
        inventory_dir = args.inventory_dir or Path(scratch) / "inventory"
        lab = BenchLab(args.lab_name, inventory_dir)
        bench = Bench(lab, settings, run)
        try:
            reused = bool(lab.hosts)
            bench.log(f"lab {args.lab_name}: up (split)")
            lab_seconds = lab.up("split")
            bench.log("deploy")
            deploy_seconds, summary = lab.deploy()
            run["lab"] = {"name": args.lab_name, "reused": reused, "lab_up_seconds": round(lab_seconds, 1),
                          "deploy_seconds": round(deploy_seconds, 1), "deploy_summary": summary,
                          "bench_vars": BENCH_VARS}
            app, postgres = lab.context(BENCH_HOSTS["app"])["app"], lab.context(BENCH_HOSTS["db"])["postgres"]
            db = lab.context(BENCH_HOSTS["db"])["host"]
            run["topology"] = {"name": "split", "hosts": sorted(lab.hosts), "bench_hosts": BENCH_HOSTS,
                               "host_memory": db["memory_human"],
                               "host_cpus": db["cpus"], "app_workers_per_host": app["workers"],
                               "app_threads": app.get("threads", 1), "app_worker_class": app.get("worker_class"),
                               "pool_size": app["db_pool_size"], "max_overflow": app["db_max_overflow"],
                               "postgresql_max_connections": postgres["max_connections"],
                               "note": "every lab host is a systemd-nspawn container on this one machine: they "
                                       "share its cores with each other and with the load generator"}
            for name in names:
                if name in BASE_SIZE_PARTS and current_jobs(lab) != settings.base_jobs:
                    bench.log(f"seeding {settings.base_jobs} jobs for the base-size parts")
                    run["data"]["base"] = reseed(lab, settings.base_jobs)
                    bench.forget_employer()
                run_part(bench, name)
        finally:
            run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            run["machine"]["load_average_end"] = machine.load_average()
            path = results.write(run)
            if not args.keep_lab:
                bench.log(f"lab {args.lab_name}: down")
                lab.down()
    print(report.generate(run, path))
    failed = [name for name, part in run["parts"].items() if part["status"] != "ok"]
    if failed:
        print(f"parts that failed: {', '.join(failed)} (errors in {path})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
