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
from typing import Any

from tsdeploy.tuning import tune

from .. import stats
from ..context import Bench
from ..data import grow_applications
from ..remote import source

HOT_QUERIES = {"search with filters": {"kind": "search", "filters": {
    "q": "engineer", "location": "berlin", "employment_type": "full_time", "experience_level": "senior"}}}
PGBENCH_DB = "tsbench_pgbench"
PGBENCH_CLIENTS = 8
_SETTING = re.compile(r"^\s*([a-z_]+)\s*=")


def _drop_in_path(version: str) -> str:
    return f"/etc/postgresql/{version}/main/conf.d/50-tsdeploy.conf"


def configurations(bench: Bench, deployed: str, version: int) -> dict[str, str]:
    """name -> drop-in text for stock, PGTune and ours, derived from the deployed drop-in."""
    context = bench.lab.context("db1")
    db = {"memory": context["host"]["memory"], "cpus": int(context["host"]["cpus"]),
          "storage": context["vars"]["postgresql_storage"], "profile": context["vars"]["postgresql_profile"]}
    tuning_names = set(tune(**db, pg_version=version, connections=1).settings)
    pgtune = tune(**db, pg_version=version)
    kept = "\n".join(line for line in deployed.splitlines()
                     if not (_SETTING.match(line) and _SETTING.match(line).group(1) in tuning_names)) + "\n"
    header = "# tsbench part 5: {} (written by the benchmark, restored to ours afterwards)\n"
    return {"stock": header.format("stock Debian tuning") + kept,
            "pgtune": header.format("PGTune defaults") + kept + pgtune.as_conf(),
            "ours": deployed}


def apply(bench: Bench, version: int, text: str) -> None:
    """Write the drop-in and restart PostgreSQL, waiting until it accepts connections."""
    bench.lab.ssh("db1", f"sudo tee {_drop_in_path(str(version))} >/dev/null", stdin=text)
    bench.lab.ssh("db1", f"sudo systemctl restart postgresql@{version}-main && "
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
    output = bench.lab.ssh("db1", command, timeout=seconds + 120)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps line: {output[-500:]}")
    return float(match.group(1))


def run(bench: Bench) -> dict[str, Any]:
    """Interleaved rounds over the three configurations; ours is restored at the end even on failure."""
    version = int(bench.lab.ssh("db1", "ls /etc/postgresql").split()[0])
    deployed = bench.lab.ssh("db1", f"sudo cat {_drop_in_path(str(version))}")
    configs = configurations(bench, deployed, version)
    scale = bench.settings.pgbench_scale
    bench.lab.psql(f"DROP DATABASE IF EXISTS {PGBENCH_DB};", database="postgres")
    bench.lab.psql(f"CREATE DATABASE {PGBENCH_DB};", database="postgres")
    bench.lab.ssh("db1", f"cd /tmp && sudo -u postgres pgbench -i -q -s {scale} {PGBENCH_DB}", timeout=1200)
    size = bench.lab.psql(f"SELECT pg_size_pretty(pg_database_size('{PGBENCH_DB}'));", database="postgres").strip()
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
        apply(bench, version, configs["ours"])
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
            "rounds": bench.budget_note(bench.settings.tuning_rounds, done),
            "jobs": int(bench.lab.psql("SELECT count(*) FROM jobs;").strip()), "company_id": employer.company_id,
            "dashboard_applications": int(bench.lab.psql(
                "SELECT count(*) FROM applications a JOIN jobs j ON j.id = a.job_id "
                f"WHERE j.company_id = {employer.company_id};").strip())}
