"""BENCHMARKS.md and PNG plots from one results file (the report never measures anything itself)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import stats

REPO = Path(__file__).resolve().parents[2]
MARKDOWN = REPO / "BENCHMARKS.md"
QUIET_LOAD = 1.5
# Machine CPU busy while the bench generated no load (sampled before the run and before each part): above
# this, something else competed with the measurements.
QUIET_BUSY_PCT = 25.0
# part 7's locust request names that go through the app's Redis cache (get_or_set); the others bypass it.
CACHED_LOCUST_ENDPOINTS = {"/api/employer/dashboard", "/api/jobs/featured", "/api/jobs?q"}
# An endpoint whose uncached throughput is already this share of the ceiling (/health) is bound by the stack
# (TLS, nginx, Gunicorn), not by its query: a cache cannot save much there.
STACK_BOUND = 0.3
# The seed report's figures, as (low, high) % of time saved, where it gives one.
CLAIMED_RANGES = {"search_sql": (70.0, 90.0), "search_http": (40.0, 70.0), "cache": (50.0, 80.0)}
# The seed report's promises, beside which our ratios are shown.
CLAIMS = {"search": "Database queries 70-90% faster due to indexing; job search 40-70% faster",
          "cache": "API response times 50-80% better with caching",
          "dashboard": "Dashboard loading 60-85% faster with optimized queries",
          "views": "Bulk operations for view count updates (no figure given)",
          "tuning": "Optimized connection parameters (no figure given)",
          "load": "Concurrent users: better handling due to connection pooling (no figure given)",
          "deploy": "(no claim)"}
TITLES = {"search": "1. Search: with vs without the 38 indexes", "cache": "2. Cached vs uncached, against the ceiling",
          "dashboard": "3. Dashboard: statements and latency as applications grow",
          "views": "4. View counts: bulk flush vs one UPDATE per view", "tuning": "5. PostgreSQL tuning",
          "deploy": "6. Deploy time", "load": "7. Load: realistic users"}


def f(value: Any, digits: int = 1) -> str:
    """A number for a table cell ("-" for None)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def spread(summary: dict[str, float], digits: int = 1) -> str:
    """"p50 (IQR q1-q3, min-max)" of a summary."""
    return (f"{f(summary['p50'], digits)} (IQR {f(summary['q1'], digits)}-{f(summary['q3'], digits)}, "
            f"{f(summary['min'], digits)}-{f(summary['max'], digits)})")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell would end it: Markdown wants it escaped.
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _plot(name: str, stamp: str, draw) -> str:  # noqa: ANN001 (a callable taking matplotlib's Axes)
    """Draw one PNG next to the results and return its path relative to the repository."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    draw(axes)
    figure.tight_layout()
    path = REPO / "bench" / "results" / f"{stamp}-{name}.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return str(path.relative_to(REPO))


def _bars(axes, labels: list[str], series: dict[str, list[float]], ylabel: str, log: bool = False) -> None:  # noqa: ANN001
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        axes.bar([i + index * width for i in range(len(labels))], values, width, label=name)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=15, fontsize=8)
    axes.set_ylabel(ylabel)
    if log:
        axes.set_yscale("log")
    axes.legend(fontsize=8)


def search_section(data: dict[str, Any], stamp: str) -> str:
    out = []
    labels, with_ms, without_ms = [], [], []
    for size in data["sizes"]:
        if "skipped" in size:
            out.append(f"**{f(size['jobs'])} jobs:** not measured ({size['skipped']}).\n")
            continue
        out.append(f"**{f(size['jobs'])} jobs, SQL level** (the app's `search_jobs`, 2 statements, on app1; "
                   "median ms with IQR and min-max over the interleaved repetitions):\n")
        rows = []
        for row in size["sql"]["rows"]:
            rows.append([row["scenario"], spread(row["with_ms"], 2), spread(row["without_ms"], 2),
                         f(row["reduction_p50_pct"]) + " %", f(row["speedup_p50"], 2) + "x",
                         ", ".join(row["plan_with"]["indexes"]) or "none", row["plan_without"]["temp_written_blocks"]])
            labels.append(f"{row['scenario']}\n{size['jobs'] // 1000}k")
            with_ms.append(row["with_ms"]["p50"])
            without_ms.append(row["without_ms"]["p50"])
        out.append(table(["scenario", "with indexes p50 ms", "without p50 ms", "time saved", "speedup",
                          "indexes used", "temp blocks w/o"], rows))
        http = size["http"]
        out.append(f"\n**{f(size['jobs'])} jobs, HTTP** (nginx + Gunicorn, Redis stopped, wrk {http['connections']} "
                   f"connections x {http['seconds_per_measurement']} s; with = both A blocks of A-B-A; rebuilding "
                   f"the indexes took {http['index_rebuild_seconds']} s):\n")
        out.append(table(["scenario", "with p50 / p95 ms (A1; A2)", "without p50 / p95 ms", "time saved (p50)",
                          "errors w/o"],
                         [[r["scenario"], "; ".join(f"{f(a['p50_ms'])} / {f(a['p95_ms'])}" for a in r["with"]),
                           f"{f(r['without']['p50_ms'])} / {f(r['without']['p95_ms'])}",
                           f(r["reduction_p50_pct"]) + " %", r["without"]["errors"]] for r in http["rows"]]))
    if labels:
        path = _plot("search", stamp, lambda ax: _bars(ax, labels, {"with indexes": with_ms,
                                                                    "without": without_ms}, "p50 ms (log)", log=True))
        out.append(f"\n![search p50 with vs without indexes]({path})\n")
    return "\n".join(out)


def cache_section(data: dict[str, Any], stamp: str) -> str:
    rows = []
    for row in data["rows"]:
        cached, uncached = row["cached"], row["uncached"]
        rows.append([row["endpoint"], spread(cached["rps"], 0), spread(uncached["rps"], 0),
                     f(row["throughput_ratio"], 2) + "x", f(cached["p95_ms"]["p50"]), f(uncached["p95_ms"]["p50"]),
                     f(row["p95_reduction_pct"]) + " %", f(cached["fraction_of_ceiling"], 2),
                     f(uncached["fraction_of_ceiling"], 2), cached["errors"] + uncached["errors"]])
    out = [f"wrk, {data['connections']} connections x {data['seconds_per_measurement']} s per measurement; cached = "
           "Redis up and warmed, uncached = Redis stopped (the app's breaker sends every lookup to PostgreSQL). "
           f"Ceiling: /health at {f(data['ceiling_rps_p50'], 0)} req/s (median of all its runs).\n",
           table(["endpoint", "cached req/s p50 (IQR, min-max)", "uncached req/s", "throughput ratio",
                  "cached p95 ms", "uncached p95 ms", "p95 saved", "cached / ceiling", "uncached / ceiling",
                  "errors"], rows)]
    labels = [r["endpoint"] for r in data["rows"]]
    path = _plot("cache", stamp, lambda ax: _bars(ax, labels, {
        "cached": [r["cached"]["rps"]["p50"] for r in data["rows"]],
        "uncached": [r["uncached"]["rps"]["p50"] for r in data["rows"]]}, "requests/s (p50)"))
    out.append(f"\n![cached vs uncached throughput]({path})\n")
    return "\n".join(out)


def dashboard_section(data: dict[str, Any], stamp: str) -> str:
    rows = [[f(s["applications"]), f(s["statements_per_request"], 1), spread(s["p50_ms"]), spread(s["p95_ms"]),
             s["errors"]] for s in data["steps"]]
    verdict = "constant" if data["constant_statement_count"] else "NOT constant"
    out = [f"Uncached (Redis stopped), one connection, the bench employer's company ({data['company_jobs']} jobs). "
           f"Statements per request (app's own counter, incl. authentication): **{verdict}**.\n",
           table(["applications", "statements / request", "latency p50 ms", "latency p95 ms", "errors"], rows)]
    path = _plot("dashboard", stamp, lambda ax: (
        ax.plot([s["applications"] for s in data["steps"]], [s["p50_ms"]["p50"] for s in data["steps"]], "o-",
                label="p50"),
        ax.plot([s["applications"] for s in data["steps"]], [s["p95_ms"]["p50"] for s in data["steps"]], "s-",
                label="p95"),
        ax.set_xscale("log"), ax.set_xlabel("applications"), ax.set_ylabel("ms"), ax.legend()))
    out.append(f"\n![dashboard latency]({path})\n")
    return "\n".join(out)


def views_section(data: dict[str, Any], stamp: str) -> str:
    bulk, per_view = data["bulk"], data["per_view"]
    rows = [["bulk (HINCRBY per view + 1 flush)", bulk["statements"], spread(bulk["seconds"], 3),
             spread(bulk["flush_seconds"], 3)],
            ["one UPDATE per view", per_view["statements"], spread(per_view["seconds"], 3), spread(per_view["seconds"], 3)]]
    return (f"{f(data['views'])} views over {data['jobs']} jobs, on app1 with the app's own ViewCounter.\n\n"
            + table(["path", "SQL statements", "total s", "PostgreSQL part s"], rows)
            + f"\nTotal time speedup {f(data['speedup_p50'], 1)}x; database-side {f(data['db_time_speedup_p50'], 0)}x.\n")


MIN_SAMPLES_TO_JUDGE = 3


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two summaries' interquartile ranges overlap: then the medians' difference is within the noise."""
    return a["q1"] <= b["q3"] and b["q1"] <= a["q3"]


def tuning_differences(data: dict[str, Any]) -> list[str]:
    """Where tuning made a measurable difference against stock Debian settings, and where it did not."""
    rows = {r["config"]: r for r in data["rows"]}
    stock = rows.get("stock")
    if stock is None:
        return []
    out = []
    for name, row in rows.items():
        if name == "stock":
            continue
        for query, entry in row["queries"].items():
            base = stock["queries"][query]["ms"]
            if min(entry["ms"]["n"], base["n"]) < MIN_SAMPLES_TO_JUDGE:
                out.append(f"{name}, {query}: too few samples to judge (n = {min(entry['ms']['n'], base['n'])})")
            elif overlap(entry["ms"], base):
                out.append(f"{name}, {query}: no measurable difference from stock (p50 {f(entry['ms']['p50'], 1)} vs "
                           f"{f(base['p50'], 1)} ms, interquartile ranges overlap)")
            else:
                out.append(f"{name}, {query}: p50 {f(entry['ms']['p50'], 1)} vs stock {f(base['p50'], 1)} ms "
                           f"({f(base['p50'] / entry['ms']['p50'], 2)}x)")
        for key, label in (("select_only_tps", "pgbench select-only"), ("tpcb_tps", "pgbench TPC-B")):
            ours, base = row[key], stock[key]
            if min(ours["n"], base["n"]) < MIN_SAMPLES_TO_JUDGE:
                verdict = f"too few rounds to judge (n = {min(ours['n'], base['n'])})"
            elif overlap(ours, base):
                verdict = "no measurable difference from stock (interquartile ranges overlap)"
            else:
                verdict = f"{f(ours['p50'] / base['p50'], 2)}x stock"
            out.append(f"{name}, {label}: {f(ours['p50'], 0)} vs {f(base['p50'], 0)} tps, {verdict}")
        out.append(f"{name}, connection demand: {row['connection_errors']} errors vs stock's {stock['connection_errors']}")
    return out


def _megabytes(setting: str) -> float | None:
    """A memory setting as PostgreSQL shows it (4MB, 4443kB, 1536MB, 4GB) in MB."""
    units = {"kB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0 ** 2}
    for unit, factor in units.items():
        if setting.endswith(unit) and setting[: -len(unit)].isdigit():
            return int(setting[: -len(unit)]) * factor
    return None


def tuning_explanations(data: dict[str, Any]) -> str:
    """Why the configurations differ where they do and not elsewhere, from the run's own figures."""
    rows = data["rows"]
    lines = []
    for query in rows[0]["queries"]:
        temp = [r["queries"][query]["temp_written_blocks"] for r in rows]
        if min(temp) > 0 and max(temp) <= 1.05 * min(temp):
            work_mem = "/".join(r["settings"].get("work_mem", "?") for r in rows)
            lines.append(f"{query} writes {f(min(temp))}-{f(max(temp))} temporary blocks ({f(max(temp) * 8 / 1024, 0)} MB) "
                         f"in every configuration: work_mem is {work_mem}, all below what its sort or hash needs, so "
                         "none of the three removes the spill to disk.")
    buffers = {r["config"]: _megabytes(r["settings"].get("shared_buffers", "")) for r in rows}
    size = _megabytes(data["pgbench"]["size"].replace(" ", ""))
    if size and all(buffers.values()) and min(buffers.values()) < size:
        lines.append(f"pgbench's data ({data['pgbench']['size']}) is larger than every shared_buffers here "
                     f"({', '.join(f'{k} {f(v, 0)} MB' for k, v in buffers.items())}), but the lab hosts share this "
                     "machine's page cache: pages missing from shared_buffers are still read from memory, not disk, "
                     "which is why larger shared_buffers gain little in select-only.")
    errors = {r["config"]: r["connection_errors"] for r in rows}
    limits = {r["config"]: r["settings"].get("max_connections", "?") for r in rows}
    demand = rows[0]["demand"][0]["demand"] if rows[0]["demand"] else None
    if demand and any(errors.values()):
        lines.append(f"The app tier's full pool demand is {demand} connections; max_connections is "
                     f"{', '.join(f'{k} {v}' for k, v in limits.items())} (PostgreSQL keeps 3 of them for superusers), "
                     f"so connection errors were {', '.join(f'{k} {v}' for k, v in errors.items())}.")
    return ("\nWhy:\n\n" + "\n".join(f"- {line}" for line in lines) + "\n") if lines else ""


def tuning_section(data: dict[str, Any], stamp: str) -> str:
    pg = data["pgbench"]
    out = [f"At {f(data['jobs'])} jobs; the dashboard company has {f(data['dashboard_applications'])} applications. "
           f"pgbench scale {pg['scale']} ({pg['size']}), {pg['clients']} clients, {pg['seconds']} s per run. "
           "Each measurement follows a PostgreSQL restart with that configuration and a discarded warm-up.\n"]
    names = sorted({k for row in data["rows"] for k in row["settings"]})
    out.append(table(["setting"] + [r["config"] for r in data["rows"]],
                     [[n] + [r["settings"].get(n, "-") for r in data["rows"]] for n in names]))
    queries = list(data["rows"][0]["queries"])
    rows = []
    for row in data["rows"]:
        cells = [row["config"]]
        for q in queries:
            entry = row["queries"][q]
            cells += [spread(entry["ms"], 2), f(entry["ms"]["p95"], 2), entry["temp_written_blocks"]]
        errors = {}
        for d in row["demand"]:
            for message, count in d["errors"].items():
                errors[message] = errors.get(message, 0) + count
        cells += [f"{row['connection_errors']} / {sum(d['attempted'] for d in row['demand'])}"
                  + (f" ({'; '.join(errors)})" if errors else ""),
                  spread(row["select_only_tps"], 0), spread(row["tpcb_tps"], 0)]
        rows.append(cells)
    header = ["config"]
    for q in queries:
        header += [f"{q} p50 ms", f"{q} p95 ms", "temp blocks"]
    header += ["connection errors / attempts", "pgbench -S tps", "pgbench TPC-B tps"]
    out.append("\n" + table(header, rows))
    out.append("\nPlans chosen (node types; indexes), per configuration; more than one shape means rounds differed:\n")
    out.append(table(["config"] + queries,
                     [[r["config"]] + ["<br>".join(r["queries"][q].get("plan_shapes")
                                                   or [" + ".join(r["queries"][q]["plan"]["nodes"])])
                                       for q in queries] for r in data["rows"]]))
    out.append(tuning_explanations(data))
    differences = tuning_differences(data)
    if differences:
        out.append("\nWhere tuning made a difference (against stock, judged by whether the interquartile ranges "
                   "overlap):\n")
        out.append("\n".join(f"- {line}" for line in differences) + "\n")
    path = _plot("tuning", stamp, lambda ax: _bars(ax, ["select-only", "TPC-B-like"], {
        r["config"]: [r["select_only_tps"]["p50"], r["tpcb_tps"]["p50"]] for r in data["rows"]}, "tps (p50)"))
    out.append(f"\n![pgbench per configuration]({path})\n")
    return "\n".join(out)


def deploy_section(data: dict[str, Any], stamp: str) -> str:
    rows = [[r["topology"], f(r["lab_up_seconds"]), f(r["cold_seconds"]) + ("" if r["cold"] else " (lab reused: not cold)"),
             spread(r["noop"]["seconds"]), "; ".join(sorted(set(r["noop"]["summaries"])))] for r in data["rows"]]
    return table(["topology", "lab up s", "cold deploy s", "no-op re-deploy s", "no-op summary"], rows)


def _saturation(climb: dict[str, Any], cores: int) -> dict[str, str] | None:
    """What saturated first, judged again from the stored steps (the judgement lives in parts/load.py; the
    results file keeps the raw figures, so a clearer rule or wording applies to old runs too)."""
    from .parts.load import saturation, within_limits

    if not climb["steps"]:
        return None
    broke = next((s for s in climb["steps"] if not within_limits(s)), climb["steps"][-1])
    return saturation(broke, cores) if "host_cpu_pct" in broke else climb.get("saturation")


def _climbs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The part's climbs: one per Gunicorn configuration (older results files have a single one)."""
    if "variants" in data:
        return data["variants"]
    return [{"name": "as deployed", "steps": data["steps"], "best": data["best"], "saturation": data.get("saturation"),
             "limit_reached_at_users": data.get("limit_reached_at_users"), "slots": data.get("workers")}]


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


def endpoints_at_limit(climbs: list[dict[str, Any]], limit: float) -> str:
    """Per-endpoint p95 at the step that broke the limit: which requests got slow."""
    from .parts.load import within_limits

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
    if set(slow) == CACHED_LOCUST_ENDPOINTS:
        db_cpu = max(s["host_cpu_pct"].get("db1", 0.0) for c in climbs for s in c["steps"] if "host_cpu_pct" in s)
        text += (" Exactly the endpoints served through the Redis cache are slow, while the two that bypass it stay "
                 f"fast and db1 used at most {f(db_cpu, 0)} % of a core: the limit lies in the cache path (candidates: "
                 "a miss storm when entries expire or are invalidated, since misses are not coalesced and every "
                 "application invalidates the employer's dashboard; or the app's Redis circuit breaker sending "
                 "lookups to PostgreSQL after a timeout), not in CPU or worker count. Not yet diagnosed.")
    text += "\n\n"
    return text + table(["configuration", "users", "endpoint", "requests", "failures", "p95 ms"], rows)


def load_section(data: dict[str, Any], stamp: str) -> str:
    climbs = _climbs(data)
    cores = data["machine_cores"]
    out = [f"locust headless, {data['seconds_per_step']} s per step after a discarded warm-up and ramp-up, users "
           f"doubling per step until p95 reaches {f(data['p95_limit_ms'], 0)} ms or requests fail; job seekers "
           "search, open jobs and apply, employers open the dashboard. Each Gunicorn configuration is deployed "
           "(a re-deploy of the same lab and data) and climbed in turn; the deployed defaults come back afterwards.\n",
           "CPU columns are % of one core (100 % machine CPU = every core busy); a host's figure is every process in "
           "its container. In flight = req/s x mean latency (Little's law): requests being served or queued, "
           "against the app tier's request slots (Gunicorn workers x threads, one request each).\n"]
    for climb in climbs:
        hosts = sorted({h for s in climb["steps"] for h in s.get("host_cpu_pct", {})})
        rows = [[s["users"], f(s["rps"]), f(s["p50_ms"], 0), f(s["p95_ms"], 0), s["failures"],
                 f(s["machine_cpu_pct"], 0) + " %"]
                + [f(s.get("host_cpu_pct", {}).get(h), 0) for h in hosts]
                + [f(s.get("locust_cpu_pct"), 0), f"{f(s.get('busy_workers'), 1)} / {s.get('workers', '-')}"]
                for s in climb["steps"]]
        title = f"**{climb['name']}**" + (f", {climb['workers_per_host']} workers x {climb['threads']} threads per app "
                                          f"host = {climb['slots']} slots (deployed in {f(climb['deploy_seconds'])} s, "
                                          f"{climb['deploy_summary']})" if "threads" in climb else "")
        out.append(f"{title}: {_climb_verdict(climb, data['p95_limit_ms'], cores)}\n")
        out.append(table(["users", "req/s", "p50 ms", "p95 ms", "failures", "machine CPU"] + [f"{h} CPU" for h in hosts]
                         + ["locust CPU", "in flight / slots"], rows))
    best = [(c["name"], c["best"]) for c in climbs if c["best"]]
    if len(climbs) > 1 and len(best) == len(climbs):
        base = best[0][1]["rps"]
        out.append("Highest sustained rate per configuration: " + "; ".join(
            f"{name} {f(b['rps'])} req/s at {b['users']} users ({f(b['rps'] / base, 2)}x)" for name, b in best)
            + ". The users double per step, so a configuration's figure is the last step it held, not its exact "
            "capacity.\n")
    out.append(slots_finding(climbs))
    out.append(endpoints_at_limit(climbs, data["p95_limit_ms"]))
    if any(c["steps"] for c in climbs):
        def draw(ax):  # noqa: ANN001, ANN202
            for c in climbs:
                ax.plot([s["users"] for s in c["steps"]], [s["rps"] for s in c["steps"]], "o-", label=f"{c['name']} req/s")
            ax.set_xscale("log")
            ax.set_xlabel("users")
            ax.set_ylabel("req/s")
            ax.legend(fontsize=8)
        out.append(f"\n![load steps]({_plot('load', stamp, draw)})\n")
    return "\n".join(out)


def headline_load(data: dict[str, Any]) -> str:
    parts = []
    for climb in _climbs(data):
        best = climb["best"]
        parts.append(f"{climb['name']}: " + (f"{f(best['rps'])} req/s at {best['users']} users" if best
                                            else "no step met p95 < 200 ms without errors"))
    return "; ".join(parts)


def headline(name: str, data: dict[str, Any]) -> str:
    """Our measured figure in the claim's own terms, for the summary table."""
    if name == "search":
        done = [size for size in data["sizes"] if "sql" in size]
        if not done:
            return "-"
        size = done[-1]
        sql = [r["reduction_p50_pct"] for r in size["sql"]["rows"]]
        http = [r["reduction_p50_pct"] for r in size["http"]["rows"]]
        return (f"at {f(size['jobs'])} jobs: SQL time saved {f(min(sql), 0)} to {f(max(sql), 0)} %, HTTP p50 saved "
                f"{f(min(http), 0)} to {f(max(http), 0)} %")
    if name == "cache":
        rows = [r for r in data["rows"] if not r["endpoint"].startswith("ceiling")]
        saved = [r["p95_reduction_pct"] for r in rows]
        p50 = [stats.reduction(r["cached"]["p50_ms"]["p50"], r["uncached"]["p50_ms"]["p50"]) for r in rows]
        return (f"p50 saved {_range(p50)}, p95 saved {_range(saved)}; throughput "
                f"{f(min(r['throughput_ratio'] for r in rows), 1)}x to {f(max(r['throughput_ratio'] for r in rows), 1)}x")
    if name == "dashboard":
        counts = sorted({s["statements_per_request"] for s in data["steps"]})
        return (f"{'constant' if data['constant_statement_count'] else 'varying'} {', '.join(f(c, 1) for c in counts)} "
                f"statements/request; p50 {f(data['steps'][0]['p50_ms']['p50'])} ms at {f(data['steps'][0]['applications'])} "
                f"to {f(data['steps'][-1]['p50_ms']['p50'])} ms at {f(data['steps'][-1]['applications'])} applications "
                "(no before-optimization app to compare with)")
    if name == "views":
        return (f"{data['bulk']['statements']} vs {data['per_view']['statements']} statements; "
                f"{f(data['speedup_p50'], 1)}x total, {f(data['db_time_speedup_p50'], 0)}x database time")
    if name == "tuning":
        return "; ".join(f"{r['config']}: {r['connection_errors']} connection errors, TPC-B {f(r['tpcb_tps']['p50'], 0)} tps"
                         for r in data["rows"])
    if name == "deploy":
        return "; ".join(f"{r['topology']}: cold {f(r['cold_seconds'], 0)} s, no-op {f(r['noop']['seconds']['p50'], 0)} s"
                         for r in data["rows"])
    if name == "load":
        return headline_load(data)
    return "-"


def _range(values: list[float]) -> str:
    return f"{f(min(values), 0)} to {f(max(values), 0)} %"


def _against(values: list[float], claimed: tuple[float, float]) -> str:
    """How many of `values` (% of time saved) reach the claim's lower bound."""
    reached = sum(1 for v in values if v >= claimed[0])
    versus = f"{_range(values)} vs {f(claimed[0], 0)}-{f(claimed[1], 0)} % claimed"
    if reached == len(values):
        return f"meets ({versus})"
    if reached == 0:
        return f"falls short ({versus})"
    return f"partly: {reached} of {len(values)} reach {f(claimed[0], 0)} % ({versus})"


def verdict(name: str, data: dict[str, Any]) -> str:
    """Our result against the seed's claim, and why where it falls short; "not comparable" where it is."""
    if name == "search":
        parts = []
        for size in (s for s in data["sizes"] if "sql" in s):
            sql = _against([r["reduction_p50_pct"] for r in size["sql"]["rows"]], CLAIMED_RANGES["search_sql"])
            http = _against([r["reduction_p50_pct"] for r in size["http"]["rows"]], CLAIMED_RANGES["search_http"])
            parts.append(f"{f(size['jobs'])} jobs: queries {sql}; HTTP {http}")
        small = [s for s in data["sizes"] if "sql" in s and any(
            r["reduction_p50_pct"] < CLAIMED_RANGES["search_sql"][0] for r in s["sql"]["rows"])]
        why = ""
        if small:
            without = [r["without_ms"]["p50"] for r in small[0]["sql"]["rows"]]
            why = (f" Where it falls short the table is small: without indexes PostgreSQL reads all "
                   f"{f(small[0]['jobs'])} jobs in {f(min(without), 0)} to {f(max(without), 0)} ms, so an index has "
                   "little to save; the gain grows with the table.")
        return "; ".join(parts) + "." + why
    if name == "cache":
        # "Response times" read two ways: the typical request (p50) and the slow tail (p95); both are shown.
        rows = [r for r in data["rows"] if not r["endpoint"].startswith("ceiling")]
        low = CLAIMED_RANGES["cache"][0]
        p50 = [stats.reduction(r["cached"]["p50_ms"]["p50"], r["uncached"]["p50_ms"]["p50"]) for r in rows]
        text = (f"p50 saved: {_against(p50, CLAIMED_RANGES['cache'])}; "
                f"p95 saved: {_against([r['p95_reduction_pct'] for r in rows], CLAIMED_RANGES['cache'])}.")
        short = [(r, saved) for r, saved in zip(rows, p50) if saved < low]
        stack_bound = [(r, saved) for r, saved in short if r["uncached"]["fraction_of_ceiling"] >= STACK_BOUND]
        other = [(r, saved) for r, saved in short if r["uncached"]["fraction_of_ceiling"] < STACK_BOUND]
        if stack_bound:
            text += (" Short at p50: " + ", ".join(
                f"{r['endpoint']} ({f(saved, 0)} %; uncached already {f(r['uncached']['fraction_of_ceiling'], 2)} of "
                "the ceiling)" for r, saved in stack_bound)
                + ": the uncached answer is one cheap query, so TLS, nginx and Gunicorn (the ceiling) dominate and "
                "the cache can only remove the small database share.")
        if other:
            text += (" Short at p50 without being bound by the stack: " + ", ".join(
                f"{r['endpoint']} ({f(saved, 0)} %, cached p50 {f(r['cached']['p50_ms']['p50'])} ms)" for r, saved in other)
                + ": not explained by this data; see the part's spread.")
        return text
    if name == "dashboard":
        constant = "constant" if data["constant_statement_count"] else "NOT constant"
        return ("not comparable: the seed's pre-optimization dashboard does not exist here, so no \"% faster\" "
                f"can be measured; what can be is that the statement count stays {constant} as applications grow.")
    if name == "views":
        return "no figure claimed; the bulk path is confirmed (see the statements and times)"
    if name == "tuning":
        # The claims table gives ours against stock; PGTune's own rows are in the part.
        ours = [line.removeprefix("ours, ") for line in tuning_differences(data) if line.startswith("ours, ")]
        return "no figure claimed. Ours vs stock: " + ("; ".join(ours) if ours else "not measured")
    if name == "load":
        firsts = [(c["name"], _saturation(c, data["machine_cores"])) for c in _climbs(data)]
        return "no figure claimed; saturated first: " + "; ".join(
            f"{name}: {saturated['resource']}" for name, saturated in firsts if saturated)
    return "no claim"


SECTIONS = {"search": search_section, "cache": cache_section, "dashboard": dashboard_section,
            "views": views_section, "tuning": tuning_section, "deploy": deploy_section, "load": load_section}


def header(run: dict[str, Any], results_path: Path) -> str:
    m = run["machine"]
    load_start, load_end = m["load_average"], m.get("load_average_end", m["load_average"])
    # Only what was measured while the bench itself was idle says anything about other work: the load average
    # at the end includes the bench's own load generators and lab.
    idle = [("before the run", m.get("idle_busy_pct"))] + [
        (f"before part {name}", part.get("idle_busy_pct_before")) for name, part in run["parts"].items()]
    busy = [(when, pct) for when, pct in idle if pct is not None and pct >= QUIET_BUSY_PCT]
    sampled = any(pct is not None for _, pct in idle)
    # The load average trails by minutes (it may still be decaying from work that has ended); the idle samples
    # measure the moment. Results files from before the samples existed fall back to the load average.
    noisy = bool(busy) or (not sampled and load_start[0] >= QUIET_LOAD)
    topology = run.get("topology", {})
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (bench/run.py) from "
             f"`{results_path.relative_to(REPO) if results_path.is_relative_to(REPO) else results_path}`; "
             "do not edit by hand: re-run `make bench` or `bench/run.py --report-only`.", ""]
    if run["quick"]:
        lines += ["> **QUICK run (tiny data, short runs).** These figures show that the harness works and the "
                  "direction of each effect; they are not the full benchmark.", ""]
    if noisy:
        evidence = ([f"the load average was {load_start} when the run started (quiet is below {QUIET_LOAD})"]
                    if not sampled else
                    [f"the machine was {f(pct, 0)} % busy {when} while the bench generated no load (quiet is below "
                     f"{f(QUIET_BUSY_PCT, 0)} %)" for when, pct in busy])
        lines += ["> **Noisy machine:** " + "; ".join(evidence) + ". "
                  "Something besides the measured workload used the CPU (another session, or the lab's own "
                  "background work such as autovacuum after a reseed), so absolute figures and small ratios are not "
                  "reliable. Interleaving spreads the noise over both sides of each comparison, nothing more.", ""]
    elif sampled:
        lines += [f"Quiet machine: at most {f(max(p for _, p in idle if p is not None), 1)} % CPU busy whenever the bench "
                  "was idle (sampled 5 s before the run and before each part); the load averages (start "
                  f"{load_start}, end {load_end}) trail by minutes and include the bench's own load.", ""]
    lines += ["## Setup", "",
              table(["", ""], [["run", f"{run['started_at']} to {run.get('finished_at', '?')} ({'quick' if run['quick'] else 'full'})"],
                               ["machine", f"{m['cpu_model']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB RAM, "
                                           f"Linux {m['kernel']}"],
                               ["load average (1/5/15 min)", f"start {load_start}, end {load_end}"],
                               ["topology", f"{topology.get('name', '?')}: {', '.join(topology.get('hosts', []))}; "
                                            f"each host sized as {topology.get('host_memory', '?')} / "
                                            f"{topology.get('host_cpus', '?')} CPUs; "
                                            f"{topology.get('app_workers_per_host', '?')} Gunicorn sync workers per app host, "
                                            f"pool {topology.get('pool_size', '?')} + overflow {topology.get('max_overflow', '?')}"],
                               ["caveat", topology.get("note", "")],
                               ["data", "; ".join(f"{k}: {v}" for k, v in run.get("data", {}).items()) or "as deployed"]]),
              "## Method", "",
              "- Every comparison runs side by side in the same run on the same hosts and data, interleaved "
              "(A, B, A, B ...) after a discarded warm-up, except where a side cannot be switched cheaply (said "
              "in the part). Tables give medians with IQR and min-max over the repetitions.",
              "- Without indexes = the 38 indexes of `talentsphere.indexes` dropped in the same database: at SQL "
              "level inside a transaction that is rolled back (DROP INDEX is transactional), over HTTP for real, "
              "re-created by `talentsphere optimize-db` afterwards.",
              "- Cache off = Redis stopped on cache1: the app's circuit breaker serves every lookup from "
              "PostgreSQL. HTTP load goes through nginx over HTTPS with wrk (which does not verify certificates) "
              "or locust (verifying with the lab CA). The bench inventory lifts nginx's per-address API limit "
              "(20 r/s by default), because the load generator is a single address.",
              "- Each part has a time budget (10 minutes in the full run): it starts a round only if the previous "
              "round's duration still fits, so a cut-short part reports fewer rounds rather than running on; the "
              "section header gives the rounds done and the part's time.",
              "- Tuning: stock / PGTune / ours differ only in the tuning lines of `conf.d/50-tsdeploy.conf`; its "
              "listen address, TLS and logging lines stay in all three, otherwise the app could not connect.",
              "- Not compared: the seed's \"before\" application (N+1 dashboard, no bulk writes) does not exist in "
              "this repository; parts 3 and 4 compare against the naive alternative where one exists (one "
              "UPDATE per view) and otherwise show how the optimized code scales.", "",
              "## Seed report claims vs measured", "",
              table(["part", "seed report claims", "measured (medians)", "verdict"],
                    [[TITLES[name], CLAIMS[name], headline(name, part["data"]) if part["status"] == "ok" else "-",
                      verdict(name, {**part["data"], "machine_cores": m["cores"]}) if part["status"] == "ok"
                      else "not measured: the part failed"]
                     for name, part in run["parts"].items()])]
    return "\n".join(lines)


def generate(run: dict[str, Any], results_path: Path, markdown: Path = MARKDOWN) -> Path:
    """Write BENCHMARKS.md (and the plots) for `run`; returns the Markdown path."""
    from .results import utc_stamp
    from datetime import datetime

    stamp = utc_stamp(datetime.fromisoformat(run["started_at"]))
    parts = [header(run, results_path)]
    for name, part in run["parts"].items():
        rounds = part.get("data", {}).get("rounds") if part["status"] == "ok" else None
        budget = ""
        if rounds:
            budget = (f" {rounds['done']} of {rounds['planned']} {rounds['unit']}"
                      + (f" (cut short by the {rounds['budget_seconds']} s part budget)" if rounds["cut_by_budget"] else "")
                      + ".")
            if part["seconds"] > rounds["budget_seconds"]:
                budget += (f" Over its {rounds['budget_seconds']} s budget: the last {rounds['unit'][:-1]} started "
                           "while time was left and was finished rather than thrown away.")
        parts.append(f"## {TITLES[name]}\n\nSeed report: {CLAIMS[name]}. Load average {part['load_average_before']} "
                     f"before, {part['load_average_after']} after; CPU busy {f(part.get('idle_busy_pct_before'), 0)} % "
                     f"while idle before it; took {f(part['seconds'])} s.{budget}\n")
        if part["status"] == "ok":
            parts.append(SECTIONS[name]({**part["data"], "machine_cores": run["machine"]["cores"]}, stamp))
        else:
            parts.append(f"**Not measured: the part failed.** `{part['error'][:600]}`\n")
    markdown.write_text("\n".join(parts).rstrip() + "\n")
    return markdown
