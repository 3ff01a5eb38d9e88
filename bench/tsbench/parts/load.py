"""Part 7: the stack's capacity under a realistic request mix, per Gunicorn configuration, against two ceilings
measured in the same run.

Load model: closed, without think time. N connections each send their next request as soon as the previous
answer arrives; N is stepped up (`settings.load_steps`) until p95 reaches P95_LIMIT_MS or a request fails. The
figure is "the highest throughput with p95 < 100 ms and no errors", and at which N. Users with think time
(the locust users this part ran before) measure how often people click, not what the stack can serve: 160 of
them offered ~100 req/s and the app tier never ran out of anything.

Generator: wrk (C, one epoll loop per thread) with bench/wrk/mixed.lua, which walks a weighted request list
(the mix below, bearer tokens in headers) and records each request's latency under its endpoint's name. wrk
hands response() no connection, so the part runs one connection per wrk thread; then request() and
response() alternate per thread and their time difference is that request's latency. Its cost, measured on
this 2-core machine in a QUICK run: 5,400 req/s from the bare ceiling (plain HTTP) for 13 % of one core,
1,500 req/s of /health through nginx and TLS at 64 connections for 16 %, the mix at 620 req/s for 11 %: at
~2,000 req/s over TLS wrk needs about a fifth of one core. locust (even FastHttpUser, with --processes) and an
asyncio client do each request's work in Python, several times wrk's CPU per request (not measured here), on
the same two cores the lab needs. The generator's own CPU is measured at every step (wait4 on wrk), and a
saturated generator is named as such. wrk does not verify certificates: before each configuration's climb the
harness fetches /health through the lb with the lab CA checked, so the certificate under test is the one
the CA signed; the TLS work per request is the same either way.

Mix (per 143 requests): job seekers search 60 (half with a location filter), open featured jobs 20, open a
job 40, apply 10 (409 "already applied" counts as a correct answer); employers open their dashboard 13
(about 1 per 10 seeker requests). Job ids come from the searches the harness makes before the climb.

What saturated first is judged at the step that broke the limit, from measurements of that step (first rule
wins): the generator's CPU, Redis (cache host's CPU against one core: redis-server is single-threaded), the
machine's CPU (/proc/stat), PostgreSQL (the db host's CPU and the active backends sampled from
pg_stat_activity during the step), the Gunicorn request slots (Little's law: req/s x mean latency against
workers x threads), errors, or none of these.

Ceilings, with the same wrk, Lua script and steps: the app's trivial endpoint /health through nginx and TLS
(Gunicorn and the app, no database, no cache), and a bare Gunicorn serving a trivial Flask endpoint on the
control node (no nginx, no TLS, no container), with the configuration's worker class, threads, keep-alive and
recycling and the app tier's total worker count. Each configuration's figure is reported as a share of both.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import machine
from ..report import ReportContext, f, table
from . import load_legacy

if TYPE_CHECKING:
    from ..context import Bench

LUA = Path(__file__).resolve().parents[2] / "wrk" / "mixed.lua"
P95_LIMIT_MS = 100.0
GENERATOR_SATURATED = 90.0       # % of each core the generator's threads can use
MACHINE_CPU_SATURATED = 85.0     # % of all cores: above this, requests wait for a core
ONE_CORE_SATURATED = 90.0        # % of one core: redis-server (single-threaded) at its limit
DB_CPU_SATURATED = 85.0          # % of all cores used by the db host alone
WORKERS_SATURATED = 0.85         # requests in flight per Gunicorn request slot (workers x threads)
DB_SAMPLE_SECONDS = 0.5          # pg_stat_activity sampling interval during a step
WARMUP_SECONDS = 3               # discarded run before each climb: caches filled, TLS sessions open
# The mix's request names that the app serves through its Redis cache (get_or_set); the others bypass it.
CACHED_ENDPOINTS = ("/api/employer/dashboard", "/api/jobs/featured", "/api/jobs?q")
HEALTH = "/health"
# Seeker requests per round by name (the locust users' task weights), and dashboards per seeker request.
SEEKER_MIX = (("/api/jobs?q", 6), ("/api/jobs/featured", 2), ("/api/jobs/[id]", 4), ("/api/jobs/[id]/applications", 1))
DASHBOARD_EVERY = 10
QUERIES = ("developer", "engineer", "data analyst", "designer", "python", "manager", "support", "sales")
CITIES = ("berlin", "london", "paris", "madrid", "toronto")
# What the results state of each configuration: its effective Gunicorn settings, read from the deployed context.
GUNICORN_KEYS = ("workers", "worker_class", "threads", "keepalive", "max_requests", "max_requests_jitter", "timeout")

NUMBER = 7
# The seed report's claim (it gives no figure).
CLAIM = "Concurrent users: better handling due to connection pooling (no figure given)"


# --- the request mix -------------------------------------------------------------------------------------------

def request_mix(seeker: str, employer: str, job_ids: list[int], rounds: int = 10, seed: int = 7) -> list[dict]:
    """The weighted request list wrk walks: `rounds` x SEEKER_MIX seeker requests in a shuffled order, one employer
    dashboard after every DASHBOARD_EVERY of them. Deterministic for a given seed."""
    if not job_ids:
        raise ValueError("the mix needs job ids (search the seeded jobs first)")
    pick = random.Random(seed)
    seeker_auth = {"Authorization": f"Bearer {seeker}"}
    names = [name for name, weight in SEEKER_MIX for _ in range(weight * rounds)]
    pick.shuffle(names)
    requests, searches = [], 0
    for count, name in enumerate(names, 1):
        if name == "/api/jobs?q":
            searches += 1
            path = f"/api/jobs?q={pick.choice(QUERIES).replace(' ', '+')}"
            if searches % 2 == 0:
                path += f"&location={pick.choice(CITIES)}"
            requests.append(_request(name, "GET", path, seeker_auth))
        elif name == "/api/jobs/featured":
            requests.append(_request(name, "GET", "/api/jobs/featured", seeker_auth))
        elif name == "/api/jobs/[id]":
            requests.append(_request(name, "GET", f"/api/jobs/{pick.choice(job_ids)}", seeker_auth))
        else:
            # Repeated applications answer 409 (already applied): a correct answer under load, not an error.
            requests.append(_request(name, "POST", f"/api/jobs/{pick.choice(job_ids)}/applications",
                                     {**seeker_auth, "Content-Type": "application/json"},
                                     json.dumps({"cover_letter": "Load test."}), ok=(201, 409)))
        if count % DASHBOARD_EVERY == 0:
            requests.append(_request("/api/employer/dashboard", "GET", "/api/employer/dashboard",
                                     {"Authorization": f"Bearer {employer}"}))
    return requests


def _request(name: str, method: str, path: str, headers: dict[str, str], body: str | None = None,
             ok: tuple[int, ...] = (200,)) -> dict:
    return {"name": name, "method": method, "path": path, "headers": headers, "body": body, "ok": list(ok)}


def lua_requests(requests: list[dict]) -> str:
    """The request list as the Lua file mixed.lua loads (REQUESTS = {...})."""
    def text(value: str) -> str:
        if not value.isascii():
            raise ValueError(f"non-ASCII text in a request: {value!r}")
        return json.dumps(value)  # ASCII JSON strings are Lua strings too

    entries = []
    for r in requests:
        headers = ", ".join(f"[{text(k)}] = {text(v)}" for k, v in r["headers"].items())
        ok = ", ".join(f"[{int(status)}] = true" for status in r["ok"])
        body = text(r["body"]) if r["body"] is not None else "nil"
        entries.append(f"  {{name = {text(r['name'])}, method = {text(r['method'])}, path = {text(r['path'])}, "
                       f"headers = {{{headers}}}, body = {body}, ok = {{{ok}}}}},")
    return "REQUESTS = {\n" + "\n".join(entries) + "\n}\n"


def wrk_mix(url: str, requests: list[dict], connections: int, seconds: float) -> dict[str, Any]:
    """wrk with mixed.lua, one thread per connection, for `seconds`: throughput, latency percentiles overall and
    per request name, failures (unexpected statuses, timeouts, socket errors) and wrk's own CPU seconds.

    The request list holds bearer tokens: it goes into a 0600 file in a private temporary directory, named to
    wrk through the environment, never onto a command line."""
    with tempfile.TemporaryDirectory(prefix="tsbench-wrk-") as directory:
        listing = Path(directory) / "requests.lua"
        fd = os.open(listing, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(lua_requests(requests))
        output = Path(directory) / "out"
        with output.open("w") as out, open(Path(directory) / "err", "w") as err:
            process = subprocess.Popen(
                ["wrk", f"--threads={connections}", f"--connections={connections}",
                 f"--duration={max(1, round(seconds))}s", "--timeout=10s", f"--script={LUA}", url],
                stdout=out, stderr=err, env={**os.environ, "TSBENCH_WRK_REQUESTS": str(listing)})
            # wait4: this child's own CPU, not that of other children (the pg_stat_activity sampler's ssh).
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        text = output.read_text()
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed ({process.returncode}): "
                               f"{(Path(directory) / 'err').read_text()[-500:]} {text[-300:]}")
    return parse_wrk(text, usage.ru_utime + usage.ru_stime)


def parse_wrk(text: str, cpu_seconds: float) -> dict[str, Any]:
    """mixed.lua's JSON line as the step records it (milliseconds, req/s)."""
    raw = json.loads([line for line in text.splitlines() if line.startswith("{")][-1])
    duration = raw["duration_us"] / 1e6
    socket_errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    kinds = dict(raw["failure_kinds"])
    for key in ("connect_errors", "read_errors", "write_errors", "timeouts"):
        if raw[key]:
            kinds[key.replace("_", " ")] = raw[key]
    endpoints = {name: {"requests": e["requests"], "failures": e["failures"], "p50_ms": e["p50_us"] / 1000,
                        "p95_ms": e["p95_us"] / 1000, "p99_ms": e["p99_us"] / 1000}
                 for name, e in raw["endpoints"].items()}
    return {"rps": round(raw["requests"] / duration, 1), "requests": raw["requests"],
            "failures": sum(e["failures"] for e in endpoints.values()) + socket_errors, "failure_kinds": kinds,
            "mean_ms": raw["mean_us"] / 1000, "p50_ms": raw["p50_us"] / 1000, "p95_ms": raw["p95_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "endpoints": endpoints, "seconds": round(duration, 2),
            "generator_cpu_seconds": round(cpu_seconds, 3)}


# --- measuring one step --------------------------------------------------------------------------------------

ACTIVE_SQL = """CREATE TEMP TABLE tsbench_active (n int);
DO $$
BEGIN
  FOR i IN 1..{samples} LOOP
    INSERT INTO tsbench_active SELECT count(*) FROM pg_stat_activity
      WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid();
    -- pg_stat_activity is read once per transaction: a commit per sample gives a fresh view.
    COMMIT;
    PERFORM pg_sleep({interval});
  END LOOP;
END $$;
SELECT round(avg(n), 2) || ' ' || max(n) FROM tsbench_active;
"""


@dataclass
class Target:
    """What a climb loads: a URL and request list, its request slots, how to read its CPU, and (lab only) how to
    sample PostgreSQL's active backends during a step."""

    kind: str                                      # "mix", "health" (through nginx) or "bare"
    url: str
    requests: list[dict]
    slots: int
    cpu: Callable[[], dict[str, float]]            # name -> CPU seconds so far
    active_backends: Callable[[float], dict[str, float]] | None = None


def step(target: Target, connections: int, seconds: float, cores: int) -> dict[str, Any]:
    """One wrk run at `connections`, with who used the CPU meanwhile and (lab) PostgreSQL's active backends."""
    sampled: dict[str, Any] = {}
    sampler = None
    if target.active_backends is not None:
        sampler = threading.Thread(target=lambda: sampled.update(target.active_backends(seconds)), daemon=True)
        sampler.start()
    cpu0, (busy0, total0), started = target.cpu(), machine.cpu_times(), time.monotonic()
    result = wrk_mix(target.url, target.requests, connections, seconds)
    wall = time.monotonic() - started
    cpu1, (busy1, total1) = target.cpu(), machine.cpu_times()
    if sampler is not None:
        sampler.join(timeout=60)
    generator = 100.0 * result.pop("generator_cpu_seconds") / wall
    return {"connections": connections, **result,
            "machine_cpu_pct": round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1),
            # % of one core, like top: 200 = both cores of this machine.
            "host_cpu_pct": {name: round(100.0 * (cpu1[name] - cpu0.get(name, 0.0)) / wall, 1) for name in cpu1},
            "generator_cpu_pct": round(generator, 1), "generator_threads": connections, "cores": cores,
            "busy_workers": round(result["rps"] * result["mean_ms"] / 1000.0, 2), "workers": target.slots,
            "db_active_backends": sampled or None}


def within_limits(step_result: dict[str, Any], limit: float = P95_LIMIT_MS) -> bool:
    return step_result["p95_ms"] < limit and step_result["failures"] == 0


def saturation(step_result: dict[str, Any], cores: int, db_host: str = "db1",
               cache_host: str = "cache1") -> dict[str, str]:
    """What ran out first at this step, from its own measurements (the first rule that holds wins)."""
    hosts = step_result.get("host_cpu_pct", {})
    generator = step_result.get("generator_cpu_pct", 0.0)
    ranked = sorted([*hosts.items(), ("wrk", generator)], key=lambda item: -item[1])
    consumers = ", ".join(f"{name} {pct:.0f} %" for name, pct in ranked[:4]) + " (of one core each)"
    machine_cpu = step_result["machine_cpu_pct"]
    usable = min(int(step_result.get("generator_threads") or 1), cores)
    active = step_result.get("db_active_backends") or {}
    db_cpu, cache_cpu = hosts.get(db_host), hosts.get(cache_host)
    in_flight, slots = step_result["busy_workers"], step_result["workers"]
    if generator >= GENERATOR_SATURATED * usable:
        return {"resource": "the load generator (wrk)",
                "evidence": f"wrk used {generator:.0f} % of a core, the most its {usable} busy thread(s) can use"}
    if cache_cpu is not None and cache_cpu >= ONE_CORE_SATURATED:
        return {"resource": "Redis (single-threaded)",
                "evidence": f"{cache_host} used {cache_cpu:.0f} % of one core; redis-server runs commands on one"}
    if machine_cpu >= MACHINE_CPU_SATURATED:
        # What neither the measured hosts nor wrk used: other work on the machine (another session, a build).
        outside = machine_cpu * cores - sum(hosts.values()) - generator
        return {"resource": "the machine's CPU",
                "evidence": f"{machine_cpu:.0f} % of {cores} cores busy; the largest users: {consumers}; "
                            f"outside the measured hosts and wrk: {max(outside, 0.0):.0f} % of a core"}
    if (db_cpu is not None and db_cpu >= DB_CPU_SATURATED * cores) or active.get("mean", 0.0) >= cores:
        return {"resource": "PostgreSQL",
                "evidence": f"{db_host} used {f(db_cpu, 0)} % of a core with {f(active.get('mean'), 1)} active "
                            f"backends on average (max {f(active.get('max'), 0)}) for {cores} cores"}
    if in_flight >= WORKERS_SATURATED * slots:
        # Little's law counts every request in the system, queued or served: near the slot count, requests
        # wait for a free worker (thread) while the CPU still has room.
        return {"resource": "the Gunicorn request slots (workers x threads)",
                "evidence": f"{in_flight:.1f} requests in flight on average (req/s x mean latency) for {slots} "
                            f"slots; machine CPU only {machine_cpu:.0f} %"}
    if step_result["failures"]:
        kinds = "; ".join(f"{k} x{v}" for k, v in list(step_result["failure_kinds"].items())[:3])
        return {"resource": "errors before any measured resource ran out", "evidence": kinds or "see failures"}
    return {"resource": "none of generator, Redis, CPU, PostgreSQL or request slots",
            "evidence": f"machine CPU {machine_cpu:.0f} %, {consumers}; {in_flight:.1f} requests in flight for "
                        f"{slots} slots"}


def judged_step(steps: list[dict[str, Any]], limit: float = P95_LIMIT_MS) -> dict[str, Any] | None:
    """The step whose saturation a climb reports: the first that broke the limit, else the heaviest."""
    return next((s for s in steps if not within_limits(s, limit)), steps[-1] if steps else None)


def best_step(steps: list[dict[str, Any]], limit: float = P95_LIMIT_MS) -> dict[str, Any] | None:
    """The highest throughput among the steps within the limit (None if none was)."""
    passing = [s for s in steps if within_limits(s, limit)]
    return max(passing, key=lambda s: s["rps"]) if passing else None


def summarize_climb(steps: list[dict[str, Any]], cores: int, db_host: str, cache_host: str,
                    cut: bool = False) -> dict[str, Any]:
    broke = next((s for s in steps if not within_limits(s)), None)
    judged = judged_step(steps)
    return {"steps": steps, "best": best_step(steps), "limit_reached_at": broke["connections"] if broke else None,
            "saturation": saturation(judged, cores, db_host, cache_host) if judged else None, "cut_by_budget": cut}


def climb(bench: Bench, target: Target, deadline: float) -> dict[str, Any]:
    """A discarded warm-up, then the steps in order until one breaks the limit (or the steps or time run out)."""
    from ..settings import BENCH_HOSTS

    settings = bench.settings
    cores = int(bench.run["machine"].get("cores") or os.cpu_count() or 1)
    wrk_mix(target.url, target.requests, settings.load_steps[0], WARMUP_SECONDS)
    steps: list[dict[str, Any]] = []
    last, cut = 0.0, False
    for connections in settings.load_steps:
        if steps and time.monotonic() + last > deadline:
            cut = True
            bench.log(f"load: {target.kind}: time budget reached")
            break
        started = time.monotonic()
        steps.append(step(target, connections, settings.load_step_seconds, cores))
        last = time.monotonic() - started
        s = steps[-1]
        bench.log(f"load: {target.kind} {connections} connections: {s['rps']:.0f} req/s, p95 {s['p95_ms']:.0f} ms, "
                  f"{s['failures']} failures, machine CPU {s['machine_cpu_pct']:.0f} %, wrk {s['generator_cpu_pct']:.0f} %")
        if not within_limits(s):
            break
    return summarize_climb(steps, cores, BENCH_HOSTS["db"], BENCH_HOSTS["cache"], cut)


# --- the part --------------------------------------------------------------------------------------------------

def seeker_token(bench: Bench) -> str:
    """A job seeker registered once for the whole part (every connection uses it)."""
    password = secrets.token_urlsafe(16)
    email = f"seeker-{secrets.token_hex(6)}@example.test"
    # Registration answers 202 without a token (it must not tell whether the email had an account): log in.
    bench.client.request("POST", "/api/auth/register", {
        "email": email, "password": password, "full_name": "Load Seeker", "role": "job_seeker"}, expect=(202,))
    return bench.client.request("POST", "/api/auth/login", {"email": email, "password": password})["token"]


def job_ids(bench: Bench) -> list[int]:
    """Ids of jobs the mix's searches find (what a seeker would open and apply to)."""
    found: list[int] = []
    for query in QUERIES:
        found += [job["id"] for job in bench.client.request("GET", f"/api/jobs?q={query.replace(' ', '+')}")["items"]]
    return sorted(set(found))[:100]


def active_backends_sampler(bench: Bench) -> Callable[[float], dict[str, float]]:
    def sample(seconds: float) -> dict[str, float]:
        samples = max(1, int(seconds / DB_SAMPLE_SECONDS))
        try:
            line = bench.lab.psql(ACTIVE_SQL.format(samples=samples, interval=DB_SAMPLE_SECONDS),
                                  timeout=seconds + 60).strip().splitlines()[-1]
            mean, peak = line.split()
            return {"mean": float(mean), "max": float(peak), "samples": samples}
        except Exception as error:  # a missing sample must not cost the step its figures
            return {"error": f"{type(error).__name__}: {error}"[:300]}
    return sample


def run(bench: Bench) -> dict[str, Any]:
    """Per Gunicorn configuration of `settings.load_variants` (a re-deploy of the same lab and data switches
    them): the mix, /health through nginx and the bare ceiling, each climbed; the deployed defaults come back
    afterwards."""
    from ..ceiling import bare_gunicorn

    settings = bench.settings
    app_hosts = sum(1 for h in bench.run["topology"]["hosts"] if h.startswith("app"))
    seeker = seeker_token(bench)
    mix = request_mix(seeker, bench.employer().token, job_ids(bench))
    health = [_request(HEALTH, "GET", HEALTH, {})]
    init_pids = {name: host.init_pid for name, host in bench.lab.lab.state.hosts.items() if host.init_pid}
    lab_cpu = lambda: machine.cpu_seconds_by_namespace(init_pids)  # noqa: E731
    started = time.monotonic()
    deadline = started + settings.load_budget_seconds
    variants: list[dict[str, Any]] = []
    # The run deployed the bench's vars alone; a configuration with the same vars needs no re-deploy.
    deployed: dict[str, Any] = {}
    cut, last = False, 0.0
    try:
        for variant in settings.load_variants:
            if variants and time.monotonic() + last > deadline:
                bench.log("load: budget reached before the next configuration")
                cut = True
                break
            variant_started = time.monotonic()
            extra = dict(variant["vars"])
            deploy_seconds, summary = 0.0, "already deployed"
            if extra != deployed:
                bench.log(f"load: deploying {variant['name']}")
                bench.lab.set_vars(extra)
                deployed = {"unknown": True}  # until the deploy succeeds
                deploy_seconds, summary = bench.lab.deploy()
                deployed = extra
            app = bench.lab.context("app1")["app"]
            gunicorn = {key: app.get(key) for key in GUNICORN_KEYS}
            slots = int(app["workers"]) * int(app.get("threads", 1)) * app_hosts
            # wrk does not verify certificates: check the lb's against the lab CA once per configuration.
            bench.client.request("GET", HEALTH)
            url = bench.lab.lb_url()
            climbs = {"mix": climb(bench, Target("mix", url + "/", mix, slots, lab_cpu,
                                                 active_backends_sampler(bench)), deadline),
                      "health": climb(bench, Target("health", url + HEALTH, health, slots, lab_cpu), deadline)}
            bare_workers = int(app["workers"]) * app_hosts
            with bare_gunicorn(gunicorn, bare_workers) as bare:
                climbs["bare"] = climb(bench, Target(
                    "bare", bare["url"], health, bare_workers * int(app.get("threads", 1)),
                    lambda pid=bare["pid"]: {"bare gunicorn": machine.tree_cpu_seconds(pid)}), deadline)
            variants.append({"name": variant["name"], "vars": extra, "gunicorn": gunicorn, "app_hosts": app_hosts,
                             "slots": slots, "bare_workers": bare_workers, "deploy_seconds": round(deploy_seconds, 1),
                             "deploy_summary": summary, "climbs": climbs})
            last = time.monotonic() - variant_started
    finally:
        if deployed:
            bench.lab.set_vars({})
            bench.lab.deploy()
    planned = len(settings.load_steps) * 3 * len(settings.load_variants)
    done = sum(len(c["steps"]) for v in variants for c in v["climbs"].values())
    return {"model": "closed", "generator": "wrk, one connection per thread, bench/wrk/mixed.lua",
            "variants": variants, "p95_limit_ms": P95_LIMIT_MS, "seconds_per_step": settings.load_step_seconds,
            "connections_steps": list(settings.load_steps), "cached_endpoints": list(CACHED_ENDPOINTS),
            "mix_names": {name: weight for name, weight in SEEKER_MIX},
            "rounds": bench.budget_note(planned, done, "steps",
                                        cut or any(c["cut_by_budget"] for v in variants for c in v["climbs"].values()),
                                        settings.load_budget_seconds)}


# --- the report ------------------------------------------------------------------------------------------------

def title(data: dict[str, Any]) -> str:
    if data and "model" not in data:
        return "Load: realistic users"
    return "Load: capacity under a realistic request mix"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    return []


def _limit(data: dict[str, Any]) -> float:
    return float(data.get("p95_limit_ms", P95_LIMIT_MS))


def effective(gunicorn: dict[str, Any], app_hosts: int) -> str:
    """A configuration's Gunicorn settings as the report states them."""
    g = gunicorn
    recycling = (f"recycled after {g['max_requests']} requests (+ up to {g['max_requests_jitter']})"
                 if g.get("max_requests") else "no recycling")
    return (f"{g['worker_class']}, {g['workers']} workers x {g['threads']} thread(s) per app host x {app_hosts} hosts, "
            f"keep-alive {g['keepalive']} s, {recycling}, timeout {g['timeout']} s")


def ratio(value: dict[str, Any] | None, ceiling: dict[str, Any] | None) -> float | None:
    """A best step's throughput as a share of a ceiling's best (None when either has no step within limits)."""
    if not value or not ceiling or not ceiling["rps"]:
        return None
    return value["rps"] / ceiling["rps"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


def _best(climb: dict[str, Any] | None) -> str:
    best = climb and climb["best"]
    return f"{f(best['rps'], 0)} req/s at {best['connections']} conn." if best else "none within limits"


def _saturated(climb: dict[str, Any] | None) -> str:
    return climb["saturation"]["resource"] if climb and climb.get("saturation") else "-"


def _endpoint_table(variant: dict[str, Any], limit: float) -> str:
    steps = variant["climbs"]["mix"]["steps"]
    best, broke = variant["climbs"]["mix"]["best"], next((s for s in steps if not within_limits(s, limit)), None)
    chosen = [(label, s) for label, s in (("best", best), ("over the limit", broke)) if s]
    names = sorted({n for _, s in chosen for n in s["endpoints"]})
    if not names:
        return ""
    header = ["endpoint"] + [f"p95 ms, {label} ({s['connections']} conn.)" for label, s in chosen] + ["failures"]
    rows = [[name + (" (cached)" if name in CACHED_ENDPOINTS else "")]
            + [f(s["endpoints"].get(name, {}).get("p95_ms"), 0) for _, s in chosen]
            + [sum(s["endpoints"].get(name, {}).get("failures", 0) for _, s in chosen)] for name in names]
    return table(header, rows)


def _steps_table(climb: dict[str, Any]) -> str:
    hosts = sorted({h for s in climb["steps"] for h in s.get("host_cpu_pct", {})})
    rows = []
    for s in climb["steps"]:
        active = s.get("db_active_backends") or {}
        rows.append([s["connections"], f(s["rps"], 0), f(s["p50_ms"], 1), f(s["p95_ms"], 1), s["failures"],
                     f(s["machine_cpu_pct"], 0) + " %"] + [f(s["host_cpu_pct"].get(h), 0) for h in hosts]
                    + [f(s["generator_cpu_pct"], 0), f"{f(s['busy_workers'], 1)} / {s['workers']}",
                       f(active.get("mean"), 1) if "mean" in active else "-"])
    return table(["conn.", "req/s", "p50 ms", "p95 ms", "failures", "machine CPU"] + [f"{h} CPU" for h in hosts]
                 + ["wrk CPU", "in flight / slots", "PG active"], rows)


def section(data: dict[str, Any], context: ReportContext) -> str:
    if "model" not in data:
        return load_legacy.section(data, context)
    limit = _limit(data)
    out = [f"Closed model without think time: wrk with one connection per thread, each sending its next request as "
           f"soon as the answer arrives; connections stepped through {', '.join(map(str, data['connections_steps']))}, "
           f"{data['seconds_per_step']} s per step after a discarded {WARMUP_SECONDS} s warm-up, until p95 reaches "
           f"{f(limit, 0)} ms or a request fails. The figure is the **highest throughput with p95 < {f(limit, 0)} ms "
           "and no errors**. Mix per 143 requests: search 60 (half with a location filter), featured 20, job detail "
           "40, apply 10 (409 counts as correct), employer dashboard 13: 93 of the 143 (65 %) are served through the "
           "Redis cache, so the mix's share of the /health-through-nginx ceiling is mostly that of cached endpoints. "
           "wrk does not verify certificates; the harness checks the lb's against the lab CA before each "
           "configuration.\n",
           "Ceilings in the same run, same generator and steps: **/health through nginx and TLS** (Gunicorn and the "
           "app, no database or cache) and a **bare Gunicorn** with a trivial Flask endpoint on the control node "
           "(no nginx, TLS or container; the configuration's worker class, threads, keep-alive and recycling, and the "
           "app tier's total workers). CPU columns are % of one core (100 % machine CPU = every core busy); in flight "
           "= req/s x mean latency (Little's law) against the request slots (workers x threads); PG active = "
           f"PostgreSQL's active client backends sampled every {DB_SAMPLE_SECONDS} s.\n"]
    rows = []
    for v in data["variants"]:
        c = v["climbs"]
        mix = c["mix"]
        rows.append([v["name"], _best(mix), f(mix["best"]["p95_ms"], 0) if mix["best"] else "-",
                     _pct(ratio(mix["best"], c.get("bare", {}).get("best"))),
                     _pct(ratio(mix["best"], c.get("health", {}).get("best"))),
                     _best(c.get("health")), _best(c.get("bare")), _saturated(mix)])
    out.append(table(["configuration", "mix: best within limits", "p95 ms", "of bare ceiling",
                      "of /health via nginx", "/health via nginx", "bare Gunicorn", "saturated first (mix)"], rows))
    for v in data["variants"]:
        mix = v["climbs"]["mix"]
        deployed = (f"re-deployed in {f(v['deploy_seconds'])} s ({v['deploy_summary']})" if v["deploy_seconds"]
                    else "as the run deployed it")
        out.append(f"**{v['name']}** (inventory vars {v['vars'] or 'none'}): {effective(v['gunicorn'], v['app_hosts'])}"
                   f" = {v['slots']} request slots; {deployed}.\n")
        saturated = mix.get("saturation")
        if saturated:
            where = (f"at {mix['limit_reached_at']} connections, the first step over the limit"
                     if mix["limit_reached_at"] else "at the heaviest step (the limit was never reached)")
            out.append(f"Mix: best {_best(mix)}; what saturated first, {where}: **{saturated['resource']}** "
                       f"({saturated['evidence']}).\n")
        out.append(_steps_table(mix))
        out.append(_endpoint_table(v, limit))
        for kind, label in (("health", "/health through nginx"), ("bare", "bare Gunicorn")):
            other = v["climbs"].get(kind)
            if other and other["steps"]:
                out.append(f"{label}: best {_best(other)}; saturated first: {_saturated(other)} "
                           f"({other['saturation']['evidence']}).\n")
                out.append(_steps_table(other))
    if any(v["climbs"]["mix"]["steps"] for v in data["variants"]):
        def draw(ax):  # noqa: ANN001, ANN202
            for v in data["variants"]:
                for kind, style in (("mix", "o-"), ("bare", "x:")):
                    c = v["climbs"].get(kind)
                    if c and c["steps"]:
                        ax.plot([s["connections"] for s in c["steps"]], [s["rps"] for s in c["steps"]], style,
                                label=f"{v['name']} {kind}")
            ax.set_xscale("log")
            ax.set_xlabel("connections")
            ax.set_ylabel("req/s")
            ax.legend(fontsize=7)
        out.append(f"\n![load steps]({context.plot('load', draw)})\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    if "model" not in data:
        return load_legacy.headline(data, context)
    limit = _limit(data)
    parts = []
    for v in data["variants"]:
        best = v["climbs"]["mix"]["best"]
        if not best:
            parts.append(f"{v['name']}: no step met p95 < {f(limit, 0)} ms without errors")
            continue
        parts.append(f"{v['name']}: {f(best['rps'], 0)} req/s at {best['connections']} connections "
                     f"({_pct(ratio(best, v['climbs'].get('bare', {}).get('best')))} of bare Gunicorn, "
                     f"{_pct(ratio(best, v['climbs'].get('health', {}).get('best')))} of /health via nginx)")
    return "; ".join(parts)


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    if "model" not in data:
        return load_legacy.verdict(data, context)
    return "no figure claimed; saturated first: " + "; ".join(
        f"{v['name']}: {_saturated(v['climbs']['mix'])}" for v in data["variants"] if v["climbs"]["mix"]["steps"])
