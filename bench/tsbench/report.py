"""BENCHMARKS.md and PNG plots from one results file (the report never measures anything itself)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MARKDOWN = REPO / "BENCHMARKS.md"
QUIET_LOAD = 1.5
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
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
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


def tuning_section(data: dict[str, Any], stamp: str) -> str:
    pg = data["pgbench"]
    out = [f"At {f(data['jobs'])} jobs; the dashboard company has {f(data['dashboard_applications'])} applications. "
           f"pgbench scale {pg['scale']} ({pg['size']}), {pg['clients']} clients, {pg['seconds']} s per run.\n"]
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
    path = _plot("tuning", stamp, lambda ax: _bars(ax, ["select-only", "TPC-B-like"], {
        r["config"]: [r["select_only_tps"]["p50"], r["tpcb_tps"]["p50"]] for r in data["rows"]}, "tps (p50)"))
    out.append(f"\n![pgbench per configuration]({path})\n")
    return "\n".join(out)


def deploy_section(data: dict[str, Any], stamp: str) -> str:
    rows = [[r["topology"], f(r["lab_up_seconds"]), f(r["cold_seconds"]) + ("" if r["cold"] else " (lab reused: not cold)"),
             spread(r["noop"]["seconds"]), "; ".join(sorted(set(r["noop"]["summaries"])))] for r in data["rows"]]
    return table(["topology", "lab up s", "cold deploy s", "no-op re-deploy s", "no-op summary"], rows)


def load_section(data: dict[str, Any], stamp: str) -> str:
    rows = [[s["users"], f(s["rps"]), f(s["p50_ms"], 0), f(s["p95_ms"], 0), s["failures"], f(s["machine_cpu_pct"], 0) + " %"]
            for s in data["steps"]]
    best = data["best"]
    verdict = (f"Highest sustained rate with p95 < {f(data['p95_limit_ms'], 0)} ms and no errors: **{f(best['rps'])} "
               f"req/s at {best['users']} users**." if best else
               f"No step kept p95 under {f(data['p95_limit_ms'], 0)} ms without errors.")
    out = [f"locust headless, {data['seconds_per_step']} s per step; users search, open jobs, apply; employers open "
           f"the dashboard. {verdict}\n", table(["users", "req/s", "p50 ms", "p95 ms", "failures", "machine CPU"], rows)]
    if data["steps"]:
        path = _plot("load", stamp, lambda ax: (ax.plot([s["users"] for s in data["steps"]], [s["rps"] for s in data["steps"]],
                                                        "o-", label="req/s"), ax.set_xlabel("users"),
                                                ax.set_ylabel("req/s"), ax.legend()))
        out.append(f"\n![load steps]({path})\n")
    return "\n".join(out)


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
        return (f"p95 saved {f(min(saved), 0)} to {f(max(saved), 0)} %; throughput "
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
        best = data["best"]
        return f"{f(best['rps'])} req/s at {best['users']} users" if best else "no step met p95 < 200 ms without errors"
    return "-"


SECTIONS = {"search": search_section, "cache": cache_section, "dashboard": dashboard_section,
            "views": views_section, "tuning": tuning_section, "deploy": deploy_section, "load": load_section}


def header(run: dict[str, Any], results_path: Path) -> str:
    m = run["machine"]
    load_start, load_end = m["load_average"], m.get("load_average_end", m["load_average"])
    noisy = max(load_start[0], load_end[0]) >= QUIET_LOAD
    topology = run.get("topology", {})
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (bench/run.py) from "
             f"`{results_path.relative_to(REPO) if results_path.is_relative_to(REPO) else results_path}`; "
             "do not edit by hand: re-run `make bench` or `bench/run.py --report-only`.", ""]
    if run["quick"]:
        lines += ["> **QUICK run (tiny data, short runs).** These figures show that the harness works and the "
                  "direction of each effect; they are not the full benchmark.", ""]
    if noisy:
        lines += [f"> **Noisy machine:** the load average was {load_start} at the start and {load_end} at the end "
                  f"(threshold {QUIET_LOAD}); other work shared the CPU, so absolute figures and small ratios are "
                  "not reliable. Interleaving spreads the noise over both sides of each comparison, nothing more.", ""]
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
              "- Tuning: stock / PGTune / ours differ only in the tuning lines of `conf.d/50-tsdeploy.conf`; its "
              "listen address, TLS and logging lines stay in all three, otherwise the app could not connect.",
              "- Not compared: the seed's \"before\" application (N+1 dashboard, no bulk writes) does not exist in "
              "this repository; parts 3 and 4 compare against the naive alternative where one exists (one "
              "UPDATE per view) and otherwise show how the optimized code scales.", "",
              "## Seed report claims vs measured", "",
              table(["part", "seed report claims", "measured (medians)", "status"],
                    [[TITLES[name], CLAIMS[name], headline(name, part["data"]) if part["status"] == "ok" else "-",
                      part["status"]] for name, part in run["parts"].items()])]
    return "\n".join(lines)


def generate(run: dict[str, Any], results_path: Path, markdown: Path = MARKDOWN) -> Path:
    """Write BENCHMARKS.md (and the plots) for `run`; returns the Markdown path."""
    from .results import utc_stamp
    from datetime import datetime

    stamp = utc_stamp(datetime.fromisoformat(run["started_at"]))
    parts = [header(run, results_path)]
    for name, part in run["parts"].items():
        parts.append(f"## {TITLES[name]}\n\nSeed report: {CLAIMS[name]}. Load average {part['load_average_before']} "
                     f"before, {part['load_average_after']} after; {f(part['seconds'])} s.\n")
        if part["status"] == "ok":
            parts.append(SECTIONS[name](part["data"], stamp))
        else:
            parts.append(f"**Not measured: the part failed.** `{part['error'][:600]}`\n")
    markdown.write_text("\n".join(parts).rstrip() + "\n")
    return markdown
