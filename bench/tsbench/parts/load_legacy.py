"""Part 7's report for results files measured with locust users (think time 0.5-3 s, climbed by users): the
figures those runs recorded stay readable; new runs are measured and rendered by `load`.
"""

from __future__ import annotations

from typing import Any

from ..report import ReportContext, count_word, f, table

P95_LIMIT_MS = 200.0             # the limit those runs used
MACHINE_CPU_SATURATED = 85.0
ONE_CORE_SATURATED = 90.0
WORKERS_SATURATED = 0.85
CACHED_ENDPOINTS = ("/api/employer/dashboard", "/api/jobs/featured", "/api/jobs?q")


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
