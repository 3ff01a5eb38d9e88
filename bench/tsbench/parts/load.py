"""Part 7: headless locust users against the split lab, climbing in steps (each double the last) until p95
reaches 200 ms or requests fail: the highest sustained requests/s below that limit, and what saturated first.

Every lab host is a container on this one machine, and locust runs here too, so "what saturates" is answered
from measurements taken during each step: the machine's CPU (/proc/stat), each lab host's CPU (its PID
namespace), locust's own CPU (this process's reaped children), and how many requests were in flight on average
(Little's law: requests/s x mean latency) against the app tier's Gunicorn request slots (workers x threads,
one request each).
"""

from __future__ import annotations

import csv
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import machine
from ..context import Bench

LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfile.py"
P95_LIMIT_MS = 200.0
MACHINE_CPU_SATURATED = 85.0     # % of all cores: above this, requests wait for a core
ONE_CORE_SATURATED = 90.0        # % of one core: a single-threaded process (locust) at its limit
WORKERS_SATURATED = 0.85         # requests in flight per Gunicorn request slot (workers x threads)


def seeker_token(bench: Bench) -> str:
    """A job seeker registered once for the whole part (locust users share it)."""
    password = secrets.token_urlsafe(16)
    return bench.client.request("POST", "/api/auth/register", {
        "email": f"seeker-{secrets.token_hex(6)}@example.test", "password": password,
        "full_name": "Load Seeker", "role": "job_seeker"})["token"]


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def step(bench: Bench, users: int, directory: Path, seeker: str, slots: int) -> dict[str, Any]:
    """One locust run at `users` users: its aggregated stats plus who used the CPU meanwhile."""
    prefix = directory / f"u{users}"
    env = {**os.environ, "TSBENCH_CA": bench.lab.ca_file(), "TSBENCH_EMPLOYER_TOKEN": bench.employer().token,
           "TSBENCH_SEEKER_TOKEN": seeker}
    init_pids = {name: host.init_pid for name, host in bench.lab.lab.state.hosts.items() if host.init_pid}
    hosts0, locust0, (busy0, total0) = (machine.cpu_seconds_by_namespace(init_pids), _children_cpu_seconds(),
                                        machine.cpu_times())
    started = time.monotonic()
    process = subprocess.run(
        # --reset-stats: the ramp-up is not part of the sustained figures.
        [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
         "--reset-stats", "-u", str(users), "-r", str(max(1, users // 2)),
         "--run-time", f"{bench.settings.load_step_seconds}s", "--host", bench.lab.lb_url(), "--csv", str(prefix),
         "--stop-timeout", "5"],
        env=env, capture_output=True, text=True, timeout=bench.settings.load_step_seconds + 180, check=False)
    wall = time.monotonic() - started
    hosts1, locust1, (busy1, total1) = (machine.cpu_seconds_by_namespace(init_pids), _children_cpu_seconds(),
                                        machine.cpu_times())
    stats_csv = directory / f"u{users}_stats.csv"
    if not stats_csv.exists():
        raise RuntimeError(f"locust wrote no statistics at {users} users (exit {process.returncode}): "
                           f"{process.stderr[-800:]}")
    rows = list(csv.DictReader(stats_csv.open()))
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    per_endpoint = {row["Name"]: {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                                  "p95_ms": float(row["95%"] or 0)} for row in rows if row["Name"] != "Aggregated"}
    failures_csv = directory / f"u{users}_failures.csv"
    failure_kinds = ({f"{row['Method']} {row['Name']}: {row['Error']}"[:200]: int(row["Occurrences"])
                      for row in csv.DictReader(failures_csv.open())} if failures_csv.exists() else {})
    rps, mean_ms = float(aggregated["Requests/s"]), float(aggregated["Average Response Time"] or 0)
    return {"users": users, "rps": rps, "requests": int(aggregated["Request Count"]),
            "failures": int(aggregated["Failure Count"]), "failure_kinds": failure_kinds,
            "p50_ms": float(aggregated["50%"] or 0), "p95_ms": float(aggregated["95%"] or 0), "mean_ms": mean_ms,
            "machine_cpu_pct": round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1),
            # % of one core, like top: 200 = both cores of this machine.
            "host_cpu_pct": {name: round(100.0 * (hosts1[name] - hosts0[name]) / wall, 1) for name in init_pids},
            "locust_cpu_pct": round(100.0 * (locust1 - locust0) / wall, 1),
            "busy_workers": round(rps * mean_ms / 1000.0, 2), "workers": slots,
            "locust_exit_code": process.returncode, "endpoints": per_endpoint}


def within_limits(step_result: dict[str, Any]) -> bool:
    return step_result["p95_ms"] < P95_LIMIT_MS and step_result["failures"] == 0


def saturation(step_result: dict[str, Any], cores: int) -> dict[str, str]:
    """What ran out first at this step, from its own measurements (the first rule that holds wins)."""
    hosts = sorted(step_result["host_cpu_pct"].items(), key=lambda item: -item[1])
    consumers = ", ".join(f"{name} {pct:.0f} %" for name, pct in hosts[:3])
    consumers += f", locust {step_result['locust_cpu_pct']:.0f} % (of one core each)"
    if step_result["machine_cpu_pct"] >= MACHINE_CPU_SATURATED:
        return {"resource": "the machine's CPU",
                "evidence": f"{step_result['machine_cpu_pct']:.0f} % of {cores} cores busy; the largest users: "
                            f"{consumers}"}
    if step_result["locust_cpu_pct"] >= ONE_CORE_SATURATED:
        return {"resource": "the load generator (locust, one process)",
                "evidence": f"locust used {step_result['locust_cpu_pct']:.0f} % of a core"}
    if step_result["busy_workers"] >= WORKERS_SATURATED * step_result["workers"]:
        # Little's law counts every request in the system, queued or served: above the worker count, requests
        # wait for a free sync worker while the CPU still has room.
        return {"resource": "the Gunicorn request slots (workers x threads)",
                "evidence": f"{step_result['busy_workers']:.1f} requests in flight on average (req/s x mean latency) "
                            f"for {step_result['workers']} slots, so requests queue for a free one; machine CPU "
                            f"only {step_result['machine_cpu_pct']:.0f} %"}
    if step_result["failures"]:
        kinds = "; ".join(f"{k} x{v}" for k, v in list(step_result["failure_kinds"].items())[:3])
        return {"resource": "errors before any measured resource ran out", "evidence": kinds or "see failures"}
    return {"resource": "none of CPU, load generator or workers",
            "evidence": f"machine CPU {step_result['machine_cpu_pct']:.0f} %, {consumers}; "
                        f"{step_result['busy_workers']:.1f} requests in flight for {step_result['workers']} slots"}


def climb(bench: Bench, seeker: str, slots: int, budget: float) -> dict[str, Any]:
    """Warm up, then double the users until a step breaks the limits (or the steps or `budget` run out)."""
    started_climb = time.monotonic()
    steps: list[dict[str, Any]] = []
    last_step, cut = 0.0, False
    with tempfile.TemporaryDirectory(prefix="tsbench-locust-") as directory:
        # Discarded warm-up at the first step's size: the users' searches fill the cache, as they would have
        # long before a real peak; without it the first step would measure cold misses.
        bench.log(f"load: warm-up, {bench.settings.load_steps[0]} users (discarded)")
        step(bench, bench.settings.load_steps[0], Path(directory), seeker, slots)
        for users in bench.settings.load_steps:
            if steps and time.monotonic() - started_climb + last_step > budget:
                bench.log(f"load: budget of {budget:.0f}s for this configuration reached")
                cut = True
                break
            bench.log(f"load: {users} users")
            started = time.monotonic()
            steps.append(step(bench, users, Path(directory), seeker, slots))
            last_step = time.monotonic() - started
            latest = steps[-1]
            bench.log(f"load: {users} users: {latest['rps']:.1f} req/s, p95 {latest['p95_ms']:.0f} ms, "
                      f"{latest['failures']} failures, machine CPU {latest['machine_cpu_pct']:.0f} %")
            if not within_limits(latest):
                break
    passing = [s for s in steps if within_limits(s)]
    broke = next((s for s in steps if not within_limits(s)), None)
    cores = int(bench.run["machine"].get("cores") or os.cpu_count() or 1)
    return {"steps": steps, "best": max(passing, key=lambda s: s["rps"]) if passing else None,
            "limit_reached_at_users": broke["users"] if broke else None,
            # Judged at the step that broke the limit; if none did, at the heaviest step (and said so).
            "saturation": saturation(broke or steps[-1], cores) if steps else None,
            "rounds": bench.budget_note(len(bench.settings.load_steps), len(steps), "steps", cut, budget)}


def run(bench: Bench) -> dict[str, Any]:
    """One climb per Gunicorn configuration of `settings.load_variants`, one after the other on the same lab
    and data (a re-deploy switches them: too slow to interleave per step), then the deployed defaults again."""
    topology = bench.run["topology"]
    app_hosts = sum(1 for h in topology["hosts"] if h.startswith("app"))
    seeker = seeker_token(bench)
    budget = bench.settings.part_budget_seconds / len(bench.settings.load_variants)
    variants = []
    try:
        for variant in bench.settings.load_variants:
            extra = dict(variant["vars"])
            bench.log(f"load: deploying {variant['name']}")
            bench.lab.set_vars(extra)
            deploy_seconds, summary = bench.lab.deploy()
            app = bench.lab.context("app1")["app"]
            slots = int(app["workers"]) * int(app.get("threads", 1)) * app_hosts
            result = climb(bench, seeker, slots, budget - deploy_seconds)
            variants.append({"name": variant["name"], "vars": extra, "workers_per_host": int(app["workers"]),
                             "threads": int(app.get("threads", 1)), "slots": slots,
                             "deploy_seconds": round(deploy_seconds, 1), "deploy_summary": summary, **result})
    finally:
        bench.lab.set_vars({})
        bench.lab.deploy()
    return {"variants": variants, "p95_limit_ms": P95_LIMIT_MS, "seconds_per_step": bench.settings.load_step_seconds,
            "rounds": bench.budget_note(len(bench.settings.load_steps) * len(bench.settings.load_variants),
                                        sum(v["rounds"]["done"] for v in variants), "steps",
                                        any(v["rounds"]["cut_by_budget"] for v in variants))}
