"""Part 7: headless locust users against the split lab, climbing through `settings.load_steps` until p95
reaches P95_LIMIT_MS or requests fail: the highest sustained requests/s below that limit, and what saturated first.

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
from typing import TYPE_CHECKING, Any

from .. import machine
from ..report import ReportContext, count_word, f, table

if TYPE_CHECKING:
    from ..context import Bench

LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfile.py"
P95_LIMIT_MS = 200.0
MACHINE_CPU_SATURATED = 85.0     # % of all cores: above this, requests wait for a core
ONE_CORE_SATURATED = 90.0        # % of one core: a single-threaded process (locust) at its limit
WORKERS_SATURATED = 0.85         # requests in flight per Gunicorn request slot (workers x threads)
# The locustfile's request names that the app serves through its Redis cache (get_or_set); the others bypass it.
CACHED_ENDPOINTS = ("/api/employer/dashboard", "/api/jobs/featured", "/api/jobs?q")

NUMBER = 7
# The seed report's claim (it gives no figure).
CLAIM = "Concurrent users: better handling due to connection pooling (no figure given)"


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
            "cached_endpoints": list(CACHED_ENDPOINTS),
            "rounds": bench.budget_note(len(bench.settings.load_steps) * len(bench.settings.load_variants),
                                        sum(v["rounds"]["done"] for v in variants), "steps",
                                        any(v["rounds"]["cut_by_budget"] for v in variants))}


def title(data: dict[str, Any]) -> str:
    return "Load: realistic users"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return []


def _limit(data: dict[str, Any]) -> float:
    return float(data.get("p95_limit_ms", P95_LIMIT_MS))


def _saturation(climb: dict[str, Any], cores: int) -> dict[str, str] | None:
    """What saturated first, judged again from the stored steps: the results file keeps the raw figures, so a
    clearer rule or wording applies to old runs too."""
    if not climb["steps"]:
        return None
    broke = next((s for s in climb["steps"] if not within_limits(s)), climb["steps"][-1])
    return saturation(broke, cores) if "host_cpu_pct" in broke else climb.get("saturation")


def climbs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The part's climbs: one per Gunicorn configuration (older results files have a single one)."""
    if "variants" in data:
        return data["variants"]
    return [{"name": "as deployed", "steps": data["steps"], "best": data["best"], "saturation": data.get("saturation"),
             "limit_reached_at_users": data.get("limit_reached_at_users"), "slots": data.get("workers")}]


def _growth(users: list[int]) -> tuple[str, str]:
    """How the users grow from step to step: (for the method line, for the capacity caveat)."""
    if len(users) > 1 and all(b == 2 * a for a, b in zip(users, users[1:])):
        return "doubling per step", "The users double per step"
    return f"climbing through {', '.join(str(u) for u in users)}", "The users climb in steps"


def _climb_verdict(climb: dict[str, Any], limit: float, cores: int) -> str:
    best = climb["best"]
    text = (f"highest sustained rate with p95 < {f(limit, 0)} ms and no errors: **{f(best['rps'])} req/s at "
            f"{best['users']} users**." if best else f"no step kept p95 under {f(limit, 0)} ms without errors.")
    saturated = _saturation(climb, cores)
    if saturated:
        reached = climb.get("limit_reached_at_users")
        where = (f"at {reached} users, the first step over the limit" if reached else
                 "at the heaviest step (the limit was never reached: the steps or the budget ran out first)")
        text += f" What saturated first, {where}: **{saturated['resource']}** ({saturated['evidence']})."
    return text


def slots_finding(climbs: list[dict[str, Any]]) -> str:
    """Whether more request slots moved the limit: the comparison tests the "slots saturated" reading."""
    reached = [(c, c.get("limit_reached_at_users")) for c in climbs if c.get("slots")]
    if len(reached) < 2 or any(users is None for _, users in reached):
        return ""
    (first, users0), *others = reached
    same = [c for c, users in others if users <= users0 and c["slots"] > first["slots"]]
    if not same:
        return ""
    return (f"With {', '.join(str(c['slots']) for c in same)} request slots instead of {first['slots']}, the limit "
            f"was reached at the same number of users ({users0}) or earlier: the request slots were not what limited "
            "this workload, whatever the in-flight count suggests for the default. See the endpoints below.\n")


def endpoints_at_limit(climbs: list[dict[str, Any]], limit: float, cached: set[str], db_host: str) -> str:
    """Per-endpoint p95 at the step that broke the limit: which requests got slow (`cached`: the endpoints
    served through the Redis cache; `db_host`: the database's lab host)."""
    rows, p95s = [], {}
    for climb in climbs:
        broke = next((s for s in climb["steps"] if not within_limits(s)), None)
        if broke is None or "endpoints" not in broke:
            continue
        for name, entry in sorted(broke["endpoints"].items(), key=lambda item: -item[1]["p95_ms"]):
            rows.append([climb["name"], broke["users"], name, entry["requests"], entry["failures"], f(entry["p95_ms"], 0)])
            p95s[name] = max(p95s.get(name, 0.0), entry["p95_ms"])
    if not rows:
        return ""
    slow = sorted(name for name, p95 in p95s.items() if p95 >= limit)
    fast = sorted(set(p95s) - set(slow))
    text = (f"\nPer endpoint at the step that broke the limit. Over {f(limit, 0)} ms at p95: {', '.join(slow) or 'none'}; "
            f"under it: {', '.join(fast) or 'none'}.")
    if set(slow) == set(cached):
        db_cpu = max(s["host_cpu_pct"].get(db_host, 0.0) for c in climbs for s in c["steps"] if "host_cpu_pct" in s)
        text += (f" Exactly the endpoints served through the Redis cache are slow, while the {count_word(len(fast))} "
                 f"that bypass it stay fast and {db_host} used at most {f(db_cpu, 0)} % of a core: the limit lies in "
                 "the cache path (candidates: a miss storm when entries expire or are invalidated, since misses are "
                 "not coalesced and every application invalidates the employer's dashboard; or the app's Redis "
                 "circuit breaker sending lookups to PostgreSQL after a timeout), not in CPU or worker count. Not yet "
                 "diagnosed.")
    text += "\n\n"
    return text + table(["configuration", "users", "endpoint", "requests", "failures", "p95 ms"], rows)


def section(data: dict[str, Any], context: ReportContext) -> str:
    every = climbs(data)
    limit = _limit(data)
    # The users climbed, as recorded; the planned steps where no climb got past its first step.
    climbed = max(([s["users"] for s in c["steps"]] for c in every), key=len, default=[])
    growth, caveat = _growth(climbed if len(climbed) > 1 else list(context.settings["load_steps"]))
    out = [f"locust headless, {data['seconds_per_step']} s per step after a discarded warm-up and ramp-up, users "
           f"{growth} until p95 reaches {f(limit, 0)} ms or requests fail; job seekers "
           "search, open jobs and apply, employers open the dashboard. Each Gunicorn configuration is deployed "
           "(a re-deploy of the same lab and data) and climbed in turn; the deployed defaults come back afterwards.\n",
           "CPU columns are % of one core (100 % machine CPU = every core busy); a host's figure is every process in "
           "its container. In flight = req/s x mean latency (Little's law): requests being served or queued, "
           "against the app tier's request slots (Gunicorn workers x threads, one request each).\n"]
    for climb in every:
        hosts = sorted({h for s in climb["steps"] for h in s.get("host_cpu_pct", {})})
        rows = [[s["users"], f(s["rps"]), f(s["p50_ms"], 0), f(s["p95_ms"], 0), s["failures"],
                 f(s["machine_cpu_pct"], 0) + " %"]
                + [f(s.get("host_cpu_pct", {}).get(h), 0) for h in hosts]
                + [f(s.get("locust_cpu_pct"), 0), f"{f(s.get('busy_workers'), 1)} / {s.get('workers', '-')}"]
                for s in climb["steps"]]
        heading = f"**{climb['name']}**" + (f", {climb['workers_per_host']} workers x {climb['threads']} threads per app "
                                            f"host = {climb['slots']} slots (deployed in {f(climb['deploy_seconds'])} s, "
                                            f"{climb['deploy_summary']})" if "threads" in climb else "")
        out.append(f"{heading}: {_climb_verdict(climb, limit, context.cores)}\n")
        out.append(table(["users", "req/s", "p50 ms", "p95 ms", "failures", "machine CPU"] + [f"{h} CPU" for h in hosts]
                         + ["locust CPU", "in flight / slots"], rows))
    best = [(c["name"], c["best"]) for c in every if c["best"]]
    if len(every) > 1 and len(best) == len(every):
        base = best[0][1]["rps"]
        out.append("Highest sustained rate per configuration: " + "; ".join(
            f"{name} {f(b['rps'])} req/s at {b['users']} users ({f(b['rps'] / base, 2)}x)" for name, b in best)
            + f". {caveat}, so a configuration's figure is the last step it held, not its exact capacity.\n")
    out.append(slots_finding(every))
    out.append(endpoints_at_limit(every, limit, set(data.get("cached_endpoints", CACHED_ENDPOINTS)),
                                  context.host("db")))
    if any(c["steps"] for c in every):
        def draw(ax):  # noqa: ANN001, ANN202
            for c in every:
                ax.plot([s["users"] for s in c["steps"]], [s["rps"] for s in c["steps"]], "o-", label=f"{c['name']} req/s")
            ax.set_xscale("log")
            ax.set_xlabel("users")
            ax.set_ylabel("req/s")
            ax.legend(fontsize=8)
        out.append(f"\n![load steps]({context.plot('load', draw)})\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    limit = _limit(data)
    return "; ".join(f"{climb['name']}: " + (f"{f(climb['best']['rps'])} req/s at {climb['best']['users']} users"
                                             if climb["best"] else f"no step met p95 < {f(limit, 0)} ms without errors")
                     for climb in climbs(data))


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    firsts = [(c["name"], _saturation(c, context.cores)) for c in climbs(data)]
    return "no figure claimed; saturated first: " + "; ".join(
        f"{name}: {saturated['resource']}" for name, saturated in firsts if saturated)
