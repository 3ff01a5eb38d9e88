"""Part 7: headless locust users against the split lab in growing steps: the highest sustained requests/s with
p95 under 200 ms and no errors, and what saturated (the machine's CPU, sampled from /proc/stat, is shared by
every lab host and by locust itself).
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..context import Bench

LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfile.py"
P95_LIMIT_MS = 200.0


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def seeker_token(bench: Bench) -> str:
    """A job seeker registered once for the whole part (locust users share it)."""
    password = secrets.token_urlsafe(16)
    return bench.client.request("POST", "/api/auth/register", {
        "email": f"seeker-{secrets.token_hex(6)}@example.test", "password": password,
        "full_name": "Load Seeker", "role": "job_seeker"})["token"]


def step(bench: Bench, users: int, directory: Path) -> dict[str, Any]:
    """One locust run at `users` users; the aggregated row of its stats CSV plus machine CPU use."""
    prefix = directory / f"u{users}"
    env = {**os.environ, "TSBENCH_CA": bench.lab.ca_file(), "TSBENCH_EMPLOYER_TOKEN": bench.employer().token,
           "TSBENCH_SEEKER_TOKEN": seeker_token(bench)}
    busy0, total0 = cpu_times()
    process = subprocess.run(
        [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless", "--only-summary",
         "-u", str(users), "-r", str(max(1, users // 2)), "--run-time", f"{bench.settings.load_step_seconds}s",
         "--host", bench.lab.lb_url(), "--csv", str(prefix), "--stop-timeout", "5"],
        env=env, capture_output=True, text=True, timeout=bench.settings.load_step_seconds + 120, check=False)
    busy1, total1 = cpu_times()
    rows = list(csv.DictReader((directory / f"u{users}_stats.csv").open()))
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    per_endpoint = {row["Name"]: {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                                  "p95_ms": float(row["95%"] or 0)} for row in rows if row["Name"] != "Aggregated"}
    return {"users": users, "rps": float(aggregated["Requests/s"]), "requests": int(aggregated["Request Count"]),
            "failures": int(aggregated["Failure Count"]), "p50_ms": float(aggregated["50%"] or 0),
            "p95_ms": float(aggregated["95%"] or 0), "machine_cpu_pct": 100.0 * (busy1 - busy0) / (total1 - total0),
            "locust_exit_code": process.returncode, "endpoints": per_endpoint}


def run(bench: Bench) -> dict[str, Any]:
    """Steps in order until the budget is spent; the best step meeting the limits is the answer."""
    started = time.monotonic()
    steps = []
    with tempfile.TemporaryDirectory(prefix="tsbench-locust-") as directory:
        for users in bench.settings.load_steps:
            if time.monotonic() - started > bench.settings.part_budget_seconds:
                break
            bench.log(f"load: {users} users")
            steps.append(step(bench, users, Path(directory)))
    passing = [s for s in steps if s["p95_ms"] < P95_LIMIT_MS and s["failures"] == 0]
    best = max(passing, key=lambda s: s["rps"]) if passing else None
    return {"steps": steps, "best": best, "p95_limit_ms": P95_LIMIT_MS,
            "seconds_per_step": bench.settings.load_step_seconds}
