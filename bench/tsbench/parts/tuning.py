"""Part 5: PostgreSQL tuning on the same lab db host: stock Debian vs PGTune's output vs our topology-aware
tuning, interleaved (stock, PGTune, ours, stock, ...) with a PostgreSQL restart before each measurement.

Each configuration is the deployed drop-in `conf.d/50-tsdeploy.conf` with its tuning lines replaced:
stock removes them (Debian's postgresql.conf values apply), PGTune writes `tsdeploy.tuning.tune()` with
PGTune's default connections for the profile, ours keeps the deployed file (context builder, topology-aware
max_connections). The non-tuning lines (listen address, TLS, logging, pg_stat_statements) stay in all three:
without them the app hosts could not connect at all, which would measure nothing.
(a) the app's hot queries (search with filters, dashboard aggregates): p95, plans, temp blocks written;
(b) the app tier's full pool demand opened at once from both app hosts: connection errors;
(c) pgbench select-only and TPC-B-like at a scale larger than stock shared_buffers.
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import stats
from ..data import grow_applications
from ..remote import source
from ..report import ReportContext, bars, count_word, f, spread, table
from ..settings import BENCH_HOSTS

if TYPE_CHECKING:
    from ..context import Bench

HOT_QUERIES = {"search with filters": {"kind": "search", "filters": {
    "q": "engineer", "location": "berlin", "employment_type": "full_time", "experience_level": "senior"}}}
PGBENCH_DB = "tsbench_pgbench"
PGBENCH_CLIENTS = 8
_SETTING = re.compile(r"^\s*([a-z_]+)\s*=")
DB = BENCH_HOSTS["db"]
# The deployed drop-in whose tuning lines the configurations replace, relative to the cluster's directory.
DROP_IN = "conf.d/50-tsdeploy.conf"
# The configurations' names; stock is the baseline the others are judged against.
STOCK, PGTUNE, OURS = "stock", "pgtune", "ours"
# Server facts the explanations use, the same in every configuration.
SERVER_FACTS = ("block_size", "superuser_reserved_connections")
# PostgreSQL's default block size, for results files that predate the record of block_size.
DEFAULT_BLOCK_BYTES = 8192

NUMBER = 5
# The seed report's claim (it gives no figure).
CLAIM = "Optimized connection parameters (no figure given)"
# Fewer samples than this on either side: no basis for "measurable".
MIN_SAMPLES_TO_JUDGE = 3


def _drop_in_path(version: str) -> str:
    return f"/etc/postgresql/{version}/main/{DROP_IN}"


def configurations(bench: Bench, deployed: str, version: int) -> dict[str, str]:
    """name -> drop-in text for stock, PGTune and ours, derived from the deployed drop-in."""
    from tsdeploy.tuning import tune  # the deploy tool, imported only when the part runs

    context, variables = bench.lab.context(DB), bench.lab.variables(DB)
    db = {"memory": context["host"]["memory"], "cpus": int(context["host"]["cpus"]),
          "storage": variables["postgresql_storage"], "profile": variables["postgresql_profile"]}
    tuning_names = set(tune(**db, pg_version=version, connections=1).settings)
    pgtune = tune(**db, pg_version=version)
    kept = "\n".join(line for line in deployed.splitlines()
                     if not (_SETTING.match(line) and _SETTING.match(line).group(1) in tuning_names)) + "\n"
    header = "# tsbench part 5: {} (written by the benchmark, restored to ours afterwards)\n"
    return {STOCK: header.format("stock Debian tuning") + kept,
            PGTUNE: header.format("PGTune defaults") + kept + pgtune.as_conf(),
            OURS: deployed}


def apply(bench: Bench, version: int, text: str) -> None:
    """Write the drop-in and restart PostgreSQL, waiting until it accepts connections."""
    bench.lab.ssh(DB, f"sudo tee {_drop_in_path(str(version))} >/dev/null", stdin=text)
    bench.lab.ssh(DB, f"sudo systemctl restart postgresql@{version}-main && "
                       "for i in $(seq 60); do sudo -u postgres pg_isready -q && exit 0; sleep 0.5; done; exit 1")


def settings_in_force(bench: Bench) -> dict[str, str]:
    """The settings that differ between the configurations, as PostgreSQL reports them."""
    names = ("max_connections", "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
             "random_page_cost", "effective_io_concurrency", "max_parallel_workers_per_gather")
    rows = bench.lab.psql("SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
                          + ", ".join(f"'{n}'" for n in names) + ");")
    return dict(line.split("|", 1) for line in rows.splitlines() if line)


def demand(bench: Bench) -> dict[str, Any]:
    """Open the app tier's full demand from both app hosts at once (minus what the app already holds)."""
    topology = bench.run["topology"]
    per_host = int(topology["app_workers_per_host"]) * (int(topology["pool_size"]) + int(topology["max_overflow"]))
    held = int(bench.lab.psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'talentsphere';").strip())
    outcome: dict[str, Any] = {}

    def open_from(host: str, count: int) -> None:
        outcome[host] = bench.lab.app_python(source("connections"), {"connections": count, "hold_seconds": 3}, host=host)

    counts = {"app1": per_host - held // 2 - held % 2, "app2": per_host - held // 2}
    threads = [threading.Thread(target=open_from, args=item) for item in counts.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors: dict[str, int] = {}
    for result in outcome.values():
        for message, count in result["errors"].items():
            errors[message] = errors.get(message, 0) + count
    return {"demand": 2 * per_host, "already_held": held, "attempted": sum(counts.values()),
            "opened": sum(r["opened"] for r in outcome.values()), "errors": errors}


def pgbench(bench: Bench, select_only: bool) -> float:
    """tps of one pgbench run (after a short warm-up) on the db host."""
    seconds = bench.settings.pgbench_seconds
    flags = "-S " if select_only else ""
    command = (f"cd /tmp && sudo -u postgres pgbench -n {flags}-c {PGBENCH_CLIENTS} -j 2 -T 2 {PGBENCH_DB} >/dev/null && "
               f"sudo -u postgres pgbench -n {flags}-c {PGBENCH_CLIENTS} -j 2 -T {seconds} {PGBENCH_DB}")
    output = bench.lab.ssh(DB, command, timeout=seconds + 120)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps line: {output[-500:]}")
    return float(match.group(1))


def run(bench: Bench) -> dict[str, Any]:
    """Interleaved rounds over the three configurations; ours is restored at the end even on failure."""
    version = int(bench.lab.ssh(DB, "ls /etc/postgresql").split()[0])
    deployed = bench.lab.ssh(DB, f"sudo cat {_drop_in_path(str(version))}")
    configs = configurations(bench, deployed, version)
    scale = bench.settings.pgbench_scale
    bench.lab.psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB};", database="postgres")
    bench.lab.psql(f"CREATE DATABASE {PGBENCH_DB};", database="postgres")
    bench.lab.ssh(DB, f"cd /tmp && sudo -u postgres pgbench -i -q -s {scale} {PGBENCH_DB}", timeout=1200)
    size = bench.lab.psql(f"SELECT pg_size_pretty(pg_database_size('{PGBENCH_DB}'));", database="postgres").strip()
    server = dict(line.split("|", 1) for line in bench.lab.psql(
        "SELECT name, setting FROM pg_settings WHERE name IN (" + ", ".join(f"'{n}'" for n in SERVER_FACTS)
        + ");").splitlines() if line)
    employer = bench.employer()
    grow_applications(bench.lab, employer, bench.settings.dashboard_steps[-1])
    scenarios = {**HOT_QUERIES, "dashboard aggregates": {"kind": "dashboard", "company_id": employer.company_id}}
    samples: dict[str, dict[str, Any]] = {name: {"queries": {}, "demand": [], "select_only_tps": [], "tpcb_tps": []}
                                          for name in configs}
    done, last_round = 0, 0.0
    try:
        for round_number in range(bench.settings.tuning_rounds):
            # Whole rounds only: every configuration gets the same number of measurements.
            if done and not bench.fits(last_round):
                bench.log(f"tuning: budget of {bench.settings.part_budget_seconds}s reached after {done} rounds")
                break
            round_started = time.monotonic()
            for name, text in configs.items():
                bench.log(f"tuning: round {round_number + 1}, {name}")
                apply(bench, version, text)
                entry = samples[name]
                entry.setdefault("settings", settings_in_force(bench))
                raw = bench.lab.app_python(source("app_queries"), {"scenarios": scenarios, "variants": ["with"],
                                                                   "repetitions": 5, "warmup": 1})
                for query, result in raw.items():
                    slot = entry["queries"].setdefault(query, {"ms": [], "plans": []})
                    slot["ms"] += [s * 1000 for s in result["with"]["seconds"]]
                    slot["plans"].append(result["with"]["plan"])
                entry["demand"].append(demand(bench))
                entry["select_only_tps"].append(pgbench(bench, select_only=True))
                entry["tpcb_tps"].append(pgbench(bench, select_only=False))
            last_round, done = time.monotonic() - round_started, done + 1
    finally:
        apply(bench, version, configs[OURS])
        bench.lab.psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB};", database="postgres")
    rows = []
    for name, entry in samples.items():
        rows.append({"config": name, "settings": entry.get("settings", {}),
                     "queries": {q: {"ms": stats.summarize(v["ms"]), "plan": v["plans"][0],
                                     # Different rounds may plan differently (statistics, caches): keep each shape.
                                     "plan_shapes": sorted({" + ".join(p["nodes"]) + "; indexes: " + (", ".join(p["indexes"]) or "none")
                                                            for p in v["plans"]}),
                                     "temp_written_blocks": max(p["temp_written_blocks"] for p in v["plans"])}
                                 for q, v in entry["queries"].items()},
                     "demand": entry["demand"], "connection_errors": sum(sum(d["errors"].values()) for d in entry["demand"]),
                     "select_only_tps": stats.summarize(entry["select_only_tps"]),
                     "tpcb_tps": stats.summarize(entry["tpcb_tps"])})
    return {"rows": rows, "pgbench": {"scale": scale, "size": size, "clients": PGBENCH_CLIENTS,
                                      "seconds": bench.settings.pgbench_seconds},
            "drop_in": DROP_IN, "server": server,
            "rounds": bench.budget_note(bench.settings.tuning_rounds, done),
            "jobs": int(bench.lab.psql("SELECT count(*) FROM jobs;").strip()), "company_id": employer.company_id,
            "dashboard_applications": int(bench.lab.psql(
                "SELECT count(*) FROM applications a JOIN jobs j ON j.id = a.job_id "
                f"WHERE j.company_id = {employer.company_id};").strip())}


def title(data: dict[str, Any]) -> str:
    return "PostgreSQL tuning"


def _configs(data: dict[str, Any]) -> list[str]:
    return [row["config"] for row in data.get("rows", [])] or [STOCK, PGTUNE, OURS]


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    configs = _configs(data)
    return [f"Tuning: {' / '.join(configs)} differ only in the tuning lines of `{data.get('drop_in', DROP_IN)}`; its "
            f"listen address, TLS and logging lines stay in all {count_word(len(configs))}, otherwise the app could "
            "not connect."]


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two summaries' interquartile ranges overlap: then the medians' difference is within the noise."""
    return a["q1"] <= b["q3"] and b["q1"] <= a["q3"]


def differences(data: dict[str, Any]) -> list[str]:
    """Where tuning made a measurable difference against stock Debian settings, and where it did not."""
    rows = {r["config"]: r for r in data["rows"]}
    stock = rows.get(STOCK)
    if stock is None:
        return []
    out = []
    for name, row in rows.items():
        if name == STOCK:
            continue
        for query, entry in row["queries"].items():
            base = stock["queries"][query]["ms"]
            if min(entry["ms"]["n"], base["n"]) < MIN_SAMPLES_TO_JUDGE:
                out.append(f"{name}, {query}: too few samples to judge (n = {min(entry['ms']['n'], base['n'])})")
            elif overlap(entry["ms"], base):
                out.append(f"{name}, {query}: no measurable difference from {STOCK} (p50 {f(entry['ms']['p50'], 1)} vs "
                           f"{f(base['p50'], 1)} ms, interquartile ranges overlap)")
            else:
                out.append(f"{name}, {query}: p50 {f(entry['ms']['p50'], 1)} vs {STOCK} {f(base['p50'], 1)} ms "
                           f"({f(base['p50'] / entry['ms']['p50'], 2)}x)")
        for key, label in (("select_only_tps", "pgbench select-only"), ("tpcb_tps", "pgbench TPC-B")):
            ours, base = row[key], stock[key]
            if min(ours["n"], base["n"]) < MIN_SAMPLES_TO_JUDGE:
                judged = f"too few rounds to judge (n = {min(ours['n'], base['n'])})"
            elif overlap(ours, base):
                judged = f"no measurable difference from {STOCK} (interquartile ranges overlap)"
            else:
                judged = f"{f(ours['p50'] / base['p50'], 2)}x {STOCK}"
            out.append(f"{name}, {label}: {f(ours['p50'], 0)} vs {f(base['p50'], 0)} tps, {judged}")
        out.append(f"{name}, connection demand: {row['connection_errors']} errors vs {STOCK}'s {stock['connection_errors']}")
    return out


def _megabytes(setting: str) -> float | None:
    """A memory setting as PostgreSQL shows it (4MB, 4443kB, 1536MB, 4GB) in MB."""
    units = {"kB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0 ** 2}
    for unit, factor in units.items():
        if setting.endswith(unit) and setting[: -len(unit)].isdigit():
            return int(setting[: -len(unit)]) * factor
    return None


def explanations(data: dict[str, Any]) -> str:
    """Why the configurations differ where they do and not elsewhere, from the run's own figures."""
    rows = data["rows"]
    server = data.get("server", {})
    block_bytes = int(server.get("block_size", DEFAULT_BLOCK_BYTES))
    lines = []
    for query in rows[0]["queries"]:
        temp = [r["queries"][query]["temp_written_blocks"] for r in rows]
        if min(temp) > 0 and max(temp) <= 1.05 * min(temp):
            work_mem = "/".join(r["settings"].get("work_mem", "?") for r in rows)
            lines.append(f"{query} writes {f(min(temp))}-{f(max(temp))} temporary blocks "
                         f"({f(max(temp) * block_bytes / 2**20, 0)} MB) in every configuration: work_mem is {work_mem}, "
                         f"all below what its sort or hash needs, so none of the {count_word(len(rows))} removes the "
                         "spill to disk.")
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
        reserved = server.get("superuser_reserved_connections")
        kept = f"{reserved} of them" if reserved is not None else "superuser_reserved_connections of them"
        lines.append(f"The app tier's full pool demand is {demand} connections; max_connections is "
                     f"{', '.join(f'{k} {v}' for k, v in limits.items())} (PostgreSQL keeps {kept} for superusers), "
                     f"so connection errors were {', '.join(f'{k} {v}' for k, v in errors.items())}.")
    return ("\nWhy:\n\n" + "\n".join(f"- {line}" for line in lines) + "\n") if lines else ""


def section(data: dict[str, Any], context: ReportContext) -> str:
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
        errors: dict[str, int] = {}
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
    out.append(explanations(data))
    found = differences(data)
    if found:
        out.append(f"\nWhere tuning made a difference (against {STOCK}, judged by whether the interquartile ranges "
                   "overlap):\n")
        out.append("\n".join(f"- {line}" for line in found) + "\n")
    path = context.plot("tuning", lambda ax: bars(ax, ["select-only", "TPC-B-like"], {
        r["config"]: [r["select_only_tps"]["p50"], r["tpcb_tps"]["p50"]] for r in data["rows"]}, "tps (p50)"))
    out.append(f"\n![pgbench per configuration]({path})\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    return "; ".join(f"{r['config']}: {r['connection_errors']} connection errors, TPC-B {f(r['tpcb_tps']['p50'], 0)} tps"
                     for r in data["rows"])


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    # The claims table gives ours against stock; PGTune's own rows are in the part's section.
    ours = [line.removeprefix(f"{OURS}, ") for line in differences(data) if line.startswith(f"{OURS}, ")]
    return f"no figure claimed. {OURS.capitalize()} vs {STOCK}: " + ("; ".join(ours) if ours else "not measured")

