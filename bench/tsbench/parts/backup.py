"""Part 8: backup and restore with the deploy's pgBackRest role vs pg_dump / pg_restore, side by side at each of
`settings.backup_sizes` (jobs, reseeded for each size), and what saturated during each step.

At each size, one after the other on the same data (each step takes minutes at the largest size, so one
measurement per side, not interleaved repetitions):
1. backup: a pgBackRest full backup with the unit its timer starts (`pgbackrest-backup@full.service` on the
   backup host: the repository there, the cluster read from the db host over TLS), then the baseline `pg_dump -Fc`
   of the app database as postgres on the db host into a file under /var/tmp;
2. restore: the restore drill (`pgbackrest-drill.service` on the backup host restores the newest backup, the one
   just taken, into a scratch cluster and replays the WAL; its `restore_seconds` run from the restore's start to
   the promotion), then the baseline `pg_restore -j 2` of the dump into a scratch database on the db host.
Wall times are taken on the host that runs the step, so SSH adds nothing. During each step the control machine
samples, every SAMPLE_SECONDS, the machine's CPU and I/O wait (/proc/stat), each lab host's CPU (its PID
namespace), each lab process's CPU and the busiest disk's utilisation (/proc/diskstats); the report names what
saturated from those figures. The e2e tests measure the RPO and RTO, not this part.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import machine
from ..data import current_jobs, reseed
from ..report import ReportContext, f, table
from ..settings import BENCH_HOSTS, FULL
from .load import MACHINE_CPU_SATURATED, ONE_CORE_SATURATED

if TYPE_CHECKING:
    from ..context import Bench

NUMBER = 8
# The seed report makes no claim about backups; the figures asked for are these sizes.
CLAIM = ("(no claim; asked for: backup and restore figures at "
         + " and ".join(f(jobs) for jobs in FULL.backup_sizes) + " jobs)")

SAMPLE_SECONDS = 0.5
# A disk busy (I/O in flight) this share of the time is saturated; a process at ONE_CORE_SATURATED % of a core
# for at least this share of the step held one core.
DISK_SATURATED = 90.0
PROCESS_SHARE_OF_STEP = 0.5
# A step shorter than this (QUICK's tiny data) has too few samples to say what saturated.
MIN_JUDGED_SECONDS = 2.0
PG_RESTORE_JOBS = 2
DUMP = "/var/tmp/tsbench-backup.dump"
SCRATCH_DB = "tsbench_restore"
# pgBackRest's units of one stanza that must be idle before a measured step: one backup or drill at a time.
BACKUP_TYPES = ("full", "diff", "incr")
IDLE_TIMEOUT = 3600
ARCHIVE_TIMEOUT = 1800
STEP_TIMEOUT = 7200
# Steps in report order: (key, kind, what).
STEPS = (("pgbackrest", "backup", "pgBackRest full"), ("pg_dump", "backup", "pg_dump -Fc"),
         ("drill", "restore", "drill restore"), ("pg_restore", "restore", f"pg_restore -j {PG_RESTORE_JOBS}"))


# --- measuring ------------------------------------------------------------------------------------------------------


def timed(bench: Bench, host: str, command: str, timeout: float = STEP_TIMEOUT) -> dict[str, Any]:
    """Run `command` on `host`, timed there: {"seconds", "rc", "output" (its last lines, stdout and stderr)}."""
    script = (f"s=$(date +%s.%N); out=$( {{ {command} ; }} 2>&1 ); rc=$?; e=$(date +%s.%N); "
              "printf '%s\\n' \"$out\" | tail -n 30; echo \"TSBENCH $s $e $rc\"")
    lines = bench.lab.ssh(host, script, timeout=timeout).rstrip("\n").splitlines()
    _, start, end, rc = lines[-1].split()
    return {"seconds": round(float(end) - float(start), 2), "rc": int(rc), "output": "\n".join(lines[:-1])[-2000:]}


class Sampler:
    """CPU, I/O wait, per-host, per-process and disk figures over a `with` block (a thread samples every
    SAMPLE_SECONDS on the control machine: the lab hosts are its containers)."""

    def __init__(self, bench: Bench) -> None:
        self.init_pids = {name: host.init_pid for name, host in bench.lab.lab.state.hosts.items() if host.init_pid}
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.usage: dict[str, Any] = {}

    def _sample(self) -> None:
        self.samples.append({"t": time.monotonic(), "cpu": machine.cpu_breakdown(), "disks": machine.disk_counters(),
                             "processes": machine.process_cpu_seconds(self.init_pids)})

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def __enter__(self) -> Sampler:
        self.hosts0 = machine.cpu_seconds_by_namespace(self.init_pids)
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        hosts1 = machine.cpu_seconds_by_namespace(self.init_pids)
        self.usage = usage(self.samples, self.hosts0, hosts1)


def usage(samples: list[dict[str, Any]], hosts0: dict[str, float], hosts1: dict[str, float]) -> dict[str, Any]:
    """What the samples of one step say: machine CPU and I/O wait %, each host's CPU (% of one core, like top),
    the busiest disk, and the three processes that used the most CPU while they were seen (% of one core)."""
    first, last = samples[0], samples[-1]
    wall = max(last["t"] - first["t"], 1e-6)
    total = max(last["cpu"][2] - first["cpu"][2], 1)
    disk = None
    for name in last["disks"]:
        if name not in first["disks"] or first["disks"][name] == last["disks"][name]:
            continue  # no I/O at all: not a candidate for the busiest disk
        (ms0, read0, written0), (ms1, read1, written1) = first["disks"][name], last["disks"][name]
        candidate = {"name": name, "util_pct": round(100.0 * (ms1 - ms0) / (1000.0 * wall), 1),
                     "read_mb_s": round((read1 - read0) * 512 / 1e6 / wall, 1),
                     "write_mb_s": round((written1 - written0) * 512 / 1e6 / wall, 1)}
        if disk is None or candidate["util_pct"] > disk["util_pct"]:
            disk = candidate
    seen: dict[str, list[tuple[float, str, str, float]]] = {}
    for sample in samples:
        for key, (host, command, seconds) in sample["processes"].items():
            seen.setdefault(key, []).append((sample["t"], host, command, seconds))
    processes = []
    for observations in seen.values():
        (t0, host, command, cpu0), (t1, _, _, cpu1) = observations[0], observations[-1]
        if t1 > t0 and cpu1 > cpu0:
            processes.append({"host": host, "command": command, "cpu_seconds": round(cpu1 - cpu0, 2),
                              "observed_seconds": round(t1 - t0, 1), "cpu_pct": round(100.0 * (cpu1 - cpu0) / (t1 - t0), 1)})
    processes.sort(key=lambda p: -p["cpu_seconds"])
    return {"seconds": round(wall, 1),
            "machine_cpu_pct": round(100.0 * (last["cpu"][0] - first["cpu"][0]) / total, 1),
            "machine_iowait_pct": round(100.0 * (last["cpu"][1] - first["cpu"][1]) / total, 1),
            "host_cpu_pct": {name: round(100.0 * (hosts1.get(name, 0.0) - hosts0.get(name, 0.0)) / wall, 1)
                             for name in sorted(hosts0)},
            "disk": disk, "processes": processes[:3]}


def measured(bench: Bench, host: str, command: str) -> dict[str, Any]:
    """`timed`, with the CPU and disk figures of the same interval."""
    with Sampler(bench) as sampler:
        result = timed(bench, host, command)
    return {**result, "usage": sampler.usage}


def _check(result: dict[str, Any], what: str) -> None:
    if result["rc"] != 0:
        raise RuntimeError(f"{what} failed (exit status {result['rc']}): {result['output'][-1500:]}")


def wait_idle(bench: Bench, host: str, units: list[str]) -> float:
    """Wait until none of pgBackRest's units runs (a timer may have started one): a `systemctl start` of a
    running oneshot would wait for that run instead of timing a new one, and a running backup holds the
    stanza's lock. Returns the seconds waited."""
    started = time.monotonic()
    while True:
        states = bench.lab.ssh(host, "systemctl show -p ActiveState --value " + shlex.join(units)).split()
        if all(state in ("inactive", "failed") for state in states):
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > IDLE_TIMEOUT:
            raise RuntimeError(f"{host}: {', '.join(units)} still running after {IDLE_TIMEOUT}s ({states})")
        time.sleep(5)


def settle(bench: Bench) -> dict[str, Any]:
    """After a reseed: VACUUM (so that autovacuum has nothing left to start during the steps), CHECKPOINT and a
    WAL switch, then wait until the archiver has pushed that segment into the repository: the reseed's WAL
    archiving is not part of any measured step."""
    started = time.monotonic()
    bench.lab.psql("VACUUM;", timeout=3600)
    vacuum_seconds = time.monotonic() - started
    if bench.lab.psql("SHOW archive_mode;", database="postgres").strip() == "off":
        return {"vacuum_seconds": round(vacuum_seconds, 1), "archive_wait_seconds": None, "archiving": False}
    segment = bench.lab.psql("CHECKPOINT; SELECT pg_walfile_name(pg_switch_wal());",
                             database="postgres").strip().splitlines()[-1]
    while True:
        last, failed, last_failed = bench.lab.psql(
            "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver;",
            database="postgres").strip().split("|")
        # A backup's history file (<segment>.<offset>.backup) sorts with its segment.
        if len(last) >= 24 and last[:24] >= segment:
            break
        if time.monotonic() - started > ARCHIVE_TIMEOUT:
            raise RuntimeError(f"WAL segment {segment} not archived after {ARCHIVE_TIMEOUT}s (last archived {last!r}, "
                               f"{failed} failures, last failed {last_failed!r})")
        time.sleep(1)
    return {"vacuum_seconds": round(vacuum_seconds, 1),
            "archive_wait_seconds": round(time.monotonic() - started - vacuum_seconds, 1), "archiving": True,
            "segment": segment}


def pgbackrest_info(bench: Bench, host: str, stanza: str) -> list[dict[str, Any]]:
    """The stanza's backups from `pgbackrest info` (as postgres on the repository host), oldest first."""
    document = json.loads(bench.lab.ssh(host, f"cd /tmp && sudo -u postgres pgbackrest --stanza={shlex.quote(stanza)} "
                                              "--output=json info"))
    entry = next((item for item in document if item.get("name") == stanza), {})
    return sorted(entry.get("backup") or (), key=lambda item: (item["timestamp"]["start"], item["label"]))


def backup_step(bench: Bench, host: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One pgBackRest full backup through its unit; its wall time and what `pgbackrest info` says of it."""
    unit = ctx["backup_unit"].format(type="full")
    before = {item["label"] for item in pgbackrest_info(bench, host, ctx["stanza"])}
    result = measured(bench, host, f"sudo systemctl start {shlex.quote(unit)}")
    if result["rc"] != 0:
        journal = bench.lab.ssh(host, f"sudo journalctl -u {shlex.quote(unit)} -n 30 --no-pager -o cat || true")
        raise RuntimeError(f"{unit} failed on {host}: {journal[-1500:]}")
    new = [item for item in pgbackrest_info(bench, host, ctx["stanza"]) if item["label"] not in before]
    if not new:
        raise RuntimeError(f"{unit} succeeded on {host} but pgbackrest info shows no new backup")
    item, info = new[-1], new[-1].get("info") or {}
    return {"seconds": result["seconds"], "usage": result["usage"], "label": item["label"], "type": item["type"],
            "pgbackrest_seconds": item["timestamp"]["stop"] - item["timestamp"]["start"],
            "size_bytes": info.get("size"), "repository_bytes": (info.get("repository") or {}).get("size")}


def dump_step(bench: Bench, db_host: str, database: str) -> dict[str, Any]:
    """The baseline backup: pg_dump -Fc of the app database into DUMP on the db host."""
    bench.lab.ssh(db_host, f"sudo rm -f {DUMP}")
    result = measured(bench, db_host, f"cd /tmp && sudo -u postgres pg_dump -Fc -f {DUMP} {shlex.quote(database)}")
    _check(result, "pg_dump")
    size = int(bench.lab.ssh(db_host, f"sudo stat -c %s {DUMP}").strip())
    return {"seconds": result["seconds"], "usage": result["usage"], "file_bytes": size}


def drill_step(bench: Bench, host: str, ctx: dict[str, Any], label: str) -> dict[str, Any]:
    """The restore drill through its unit, and its result file (written whether it passed or not)."""
    result = measured(bench, host, f"sudo systemctl start {shlex.quote(ctx['drill_unit'])}")
    drill = json.loads(bench.lab.ssh(host, f"sudo cat {shlex.quote(ctx['drill_result'])}"))
    return {"seconds": result["seconds"], "usage": result["usage"], "unit_rc": result["rc"],
            "passed": bool(drill.get("passed")), "restore_seconds": drill.get("restore_seconds"),
            "drill_seconds": drill.get("seconds"), "backup_label": drill.get("backup_label"),
            # The drill restores the newest backup: it must be the one this size just took.
            "label_matches": drill.get("backup_label") == label, "error": drill.get("error")}


def restore_step(bench: Bench, db_host: str) -> dict[str, Any]:
    """The baseline restore: pg_restore -j PG_RESTORE_JOBS of the dump into an empty scratch database."""
    bench.lab.ssh(db_host, f"cd /tmp && sudo -u postgres dropdb --if-exists {SCRATCH_DB} && "
                           f"sudo -u postgres createdb {SCRATCH_DB}")
    result = measured(bench, db_host, f"cd /tmp && sudo -u postgres pg_restore -j {PG_RESTORE_JOBS} -d {SCRATCH_DB} {DUMP}")
    _check(result, "pg_restore")
    return {"seconds": result["seconds"], "usage": result["usage"], "jobs": PG_RESTORE_JOBS}


def one_size(bench: Bench, size: dict[str, Any], hosts: dict[str, str], ctx: dict[str, Any]) -> None:
    """Reseed at `size["jobs"]`, settle, then the four steps, each recorded in `size` as it ends (a failure keeps
    the steps before it); the dump and the scratch database are removed after."""
    jobs = size["jobs"]
    bench.log(f"backup: seeding {jobs} jobs")
    size["seeded"] = reseed(bench.lab, jobs)
    bench.forget_employer()
    size["settle"] = settle(bench)
    sizes = bench.lab.psql("SELECT pg_database_size(current_database()), "
                           "(SELECT sum(pg_database_size(datname))::bigint FROM pg_database);",
                           database=ctx["db_name"]).strip().split("|")
    size["database_bytes"], size["cluster_bytes"] = int(sizes[0]), int(sizes[1])
    units = [ctx["backup_unit"].format(type=kind) for kind in BACKUP_TYPES] + [ctx["drill_unit"]]
    try:
        size["waited_for_units_seconds"] = wait_idle(bench, hosts["backup"], units)
        bench.log(f"backup: pgBackRest full backup at {jobs} jobs")
        size["pgbackrest"] = backup_step(bench, hosts["backup"], ctx)
        bench.log(f"backup: pg_dump at {jobs} jobs")
        size["pg_dump"] = dump_step(bench, hosts["db"], ctx["db_name"])
        bench.log(f"backup: restore drill at {jobs} jobs")
        size["drill"] = drill_step(bench, hosts["backup"], ctx, size["pgbackrest"]["label"])
        bench.log(f"backup: pg_restore at {jobs} jobs")
        size["pg_restore"] = restore_step(bench, hosts["db"])
    finally:
        bench.lab.ssh(hosts["db"], f"cd /tmp && sudo -u postgres dropdb --if-exists {SCRATCH_DB}; sudo rm -f {DUMP}")


def run(bench: Bench) -> dict[str, Any]:
    """Every size in ascending order; a size is skipped once the part's budget is spent, and a size that fails
    records its error and does not stop the next one."""
    hosts = {"db": BENCH_HOSTS["db"], "backup": BENCH_HOSTS["backup"]}
    ctx = bench.lab.context(hosts["backup"])["backup"]
    found = current_jobs(bench.lab)
    versions = {"pgbackrest": bench.lab.ssh(hosts["backup"], "cd /tmp && sudo -u postgres pgbackrest version").strip(),
                "pg_dump": bench.lab.ssh(hosts["db"], "pg_dump --version").strip()}
    sizes = []
    for jobs in bench.settings.backup_sizes:
        if bench.elapsed() > bench.settings.part_budget_seconds:
            sizes.append({"jobs": jobs, "skipped": f"part budget of {bench.settings.part_budget_seconds}s spent"})
            continue
        size: dict[str, Any] = {"jobs": jobs}
        sizes.append(size)
        try:
            one_size(bench, size, hosts, ctx)
        except Exception as error:  # one size's failure must not cost the next its measurement
            bench.log(f"backup: {jobs} jobs FAILED: {error}")
            size["error"] = f"{type(error).__name__}: {error}"[-1500:]
    handed_back = None
    # The part after search hands the data on at search's largest size (tuning runs on it): put it back if a
    # size of this part left another.
    if found == bench.settings.search_sizes[-1] and current_jobs(bench.lab) != found:
        bench.log(f"backup: seeding {found} jobs again for the next part")
        handed_back = reseed(bench.lab, found)
        bench.forget_employer()
    done = sum(1 for size in sizes if "pg_restore" in size)
    return {"sizes": sizes, "hosts": hosts, "stanza": ctx["stanza"], "database": ctx["db_name"],
            "compress_type": ctx["compress_type"], "process_max": ctx["process_max"], "s3": bool(ctx.get("s3")),
            "backup_unit": ctx["backup_unit"].format(type="full"), "drill_unit": ctx["drill_unit"],
            "pg_restore_jobs": PG_RESTORE_JOBS, "sample_seconds": SAMPLE_SECONDS, "versions": versions,
            "handed_back": handed_back,
            "rounds": bench.budget_note(len(bench.settings.backup_sizes), done, unit="sizes",
                                        cut_by_budget=any("skipped" in size for size in sizes))}


# --- judging and rendering (from the recorded data only) -------------------------------------------------------------


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(float(numerator) / float(denominator), 2)


def ratios(size: dict[str, Any]) -> dict[str, float | None]:
    """pgBackRest / baseline: backup time, stored size, and restore time (the drill's restore, start to
    promotion, against pg_restore)."""
    return {"backup_time": _ratio(size["pgbackrest"]["seconds"], size["pg_dump"]["seconds"]),
            "size": _ratio(size["pgbackrest"]["repository_bytes"], size["pg_dump"]["file_bytes"]),
            "restore_time": _ratio(size["drill"]["restore_seconds"], size["pg_restore"]["seconds"])}


def _busiest_host(step_usage: dict[str, Any]) -> tuple[str, float] | None:
    hosts = step_usage.get("host_cpu_pct") or {}
    return max(hosts.items(), key=lambda item: item[1]) if hosts else None


def saturation(step_usage: dict[str, Any], cores: int) -> dict[str, str]:
    """What ran out during a step, from its own samples (the first rule that holds wins): the machine's CPU,
    one core held by a single process (a single-threaded tool, or one worker of a parallel one), the disk."""
    busiest = _busiest_host(step_usage)
    hosts = ", ".join(f"{name} {pct:.0f} %" for name, pct in sorted((step_usage.get("host_cpu_pct") or {}).items(),
                                                                    key=lambda item: -item[1])[:3] if pct > 0)
    wall = float(step_usage.get("seconds") or 0)
    if wall < MIN_JUDGED_SECONDS:
        return {"resource": "too short to judge",
                "evidence": f"{wall:.1f} s sampled every {SAMPLE_SECONDS} s"}
    if step_usage["machine_cpu_pct"] >= MACHINE_CPU_SATURATED:
        return {"resource": "the machine's CPU",
                "evidence": f"{step_usage['machine_cpu_pct']:.0f} % of {cores} cores busy; hosts (of one core each): "
                            f"{hosts or 'none'}"}
    for process in step_usage.get("processes") or ():
        if process["cpu_pct"] >= ONE_CORE_SATURATED and process["observed_seconds"] >= PROCESS_SHARE_OF_STEP * wall:
            return {"resource": f"one core: {process['command']} on {process['host']}",
                    "evidence": f"that one process used {process['cpu_pct']:.0f} % of a core for "
                                f"{process['observed_seconds']:.0f} of {wall:.0f} s; machine CPU "
                                f"{step_usage['machine_cpu_pct']:.0f} %"}
    disk = step_usage.get("disk")
    if disk and disk["util_pct"] >= DISK_SATURATED:
        return {"resource": f"the disk ({disk['name']})",
                "evidence": f"I/O in flight {disk['util_pct']:.0f} % of the time, {disk['read_mb_s']:.0f} MB/s read, "
                            f"{disk['write_mb_s']:.0f} MB/s written; CPU waiting for I/O "
                            f"{step_usage['machine_iowait_pct']:.0f} %"}
    top = (step_usage.get("processes") or [None])[0]
    return {"resource": "nothing measured",
            "evidence": f"machine CPU {step_usage['machine_cpu_pct']:.0f} % (I/O wait "
                        f"{step_usage['machine_iowait_pct']:.0f} %)"
                        + (f", busiest host {busiest[0]} {busiest[1]:.0f} % of a core" if busiest else "")
                        + (f", busiest process {top['command']} on {top['host']} {top['cpu_pct']:.0f} %" if top else "")
                        + (f", disk {disk['name']} {disk['util_pct']:.0f} % busy" if disk else "")}


def _mb(value: Any) -> str:
    return "-" if value is None else f"{f(value / 1e6, 1)} MB"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{f(value, 2)}x"


def _done(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [size for size in data["sizes"] if "pg_restore" in size]


def title(data: dict[str, Any]) -> str:
    return "Backup and restore: pgBackRest vs pg_dump / pg_restore"


def method(data: dict[str, Any], context: ReportContext) -> list[str]:
    hosts = data.get("hosts") or {"db": context.host("db"), "backup": BENCH_HOSTS["backup"]}
    database = data.get("database", "talentsphere")
    unit = data.get("backup_unit", "pgbackrest-backup@full.service")
    return [
        f"Backup (part {NUMBER}): pgBackRest full = `systemctl start {unit}` on {hosts['backup']}, the unit its "
        f"timer starts (Nice=10, best-effort I/O priority 7; {data.get('compress_type', 'zst')} compression, "
        f"{data.get('process_max', 2)} processes, encrypted, the cluster read from {hosts['db']} over TLS), size = "
        f"that backup's repository size in `pgbackrest info`. Baseline: `pg_dump -Fc {database}` as postgres on "
        f"{hosts['db']} into a file in /var/tmp (removed afterwards; normal priority, which changes nothing on a lab "
        "where nothing else competes), its file size. pgBackRest copies the whole cluster, every database with its "
        "index pages; pg_dump holds the app database's rows and definitions only (indexes are rebuilt on restore): "
        "the sizes compare what each has to store, not the same content.",
        f"Restore: the restore drill (`{data.get('drill_unit', 'pgbackrest-drill.service')}` on {hosts['backup']}) "
        "restores the backup just taken into a scratch cluster (fsync off) and replays the WAL; its restore time runs "
        f"from the restore's start to the promotion (its checks after that, verify before it, are in its total). "
        f"Baseline: `pg_restore -j {data.get('pg_restore_jobs', PG_RESTORE_JOBS)}` of the dump into an empty "
        f"database on {hosts['db']}, rebuilding the indexes.",
        "Each size is reseeded, vacuumed and checkpointed, and its WAL archived, before the steps; then each side "
        "runs once, one after the other (pgBackRest first): at the largest size a step takes minutes, so there are "
        "no repetitions and no spread. Wall times are taken on the host that runs the step.",
        f"What saturated, per step, from samples every {f(data.get('sample_seconds', SAMPLE_SECONDS))} s: the "
        f"machine's CPU (saturated at {f(MACHINE_CPU_SATURATED, 0)} % of its cores), one process at "
        f"{f(ONE_CORE_SATURATED, 0)} % of a core for at least {f(100 * PROCESS_SHARE_OF_STEP, 0)} % of the step "
        f"(one core held), the busiest disk with I/O in flight {f(DISK_SATURATED, 0)} % of the time; host CPU is "
        "% of one core (its PID namespace), like top. \"Nothing measured\" means the step waited on something "
        "this part does not sample (network, fsync latency, locks, sleeps)."]


def _step_row(kind: str, what: str, seconds: str, stored: str, step: dict[str, Any], cores: int) -> list[str]:
    step_usage = step["usage"]
    busiest = _busiest_host(step_usage)
    top = (step_usage.get("processes") or [None])[0]
    verdict = saturation(step_usage, cores)
    return [kind, what, seconds, stored, f"{busiest[0]} {f(busiest[1], 0)} %" if busiest else "-",
            f"{top['command']} on {top['host']} {f(top['cpu_pct'], 0)} %" if top else "-",
            f"{verdict['resource']} ({verdict['evidence']})"]


def section(data: dict[str, Any], context: ReportContext) -> str:
    out = []
    hosts = data.get("hosts") or {"db": context.host("db"), "backup": BENCH_HOSTS["backup"]}
    for size in data["sizes"]:
        jobs = f(size["jobs"])
        if "skipped" in size:
            out.append(f"**{jobs} jobs:** not measured ({size['skipped']}).\n")
            continue
        if "pg_restore" not in size:
            before = [what for key, _, what in STEPS if key in size]
            kept = f" (measured before it, in the results file: {', '.join(before)})" if before else ""
            out.append(f"**{jobs} jobs: not measured, a step failed{kept}.** `{size.get('error', '?')[:600]}`\n")
            continue
        settle_note = size.get("settle") or {}
        archived = ("" if settle_note.get("archive_wait_seconds") is None
                    else f", its WAL archived {f(settle_note['archive_wait_seconds'])} s after the vacuum")
        out.append(f"**{jobs} jobs** (database {_mb(size['database_bytes'])}, cluster {_mb(size['cluster_bytes'])}; "
                   f"seeded in {f(size['seeded']['seconds'])} s, vacuumed in {f(settle_note.get('vacuum_seconds'))} s"
                   f"{archived}):\n")
        pgbackrest, dump, drill, restore = size["pgbackrest"], size["pg_dump"], size["drill"], size["pg_restore"]
        drill_total = (f" (drill total {f(drill['drill_seconds'])} s, {'passed' if drill['passed'] else 'FAILED'}"
                       + ("" if drill["label_matches"] else f"; restored {drill['backup_label']}, not this backup")
                       + ")")
        rows = [
            _step_row("backup", f"pgBackRest full ({pgbackrest['label']}) to {hosts['backup']}", f(pgbackrest["seconds"]),
                      f"{_mb(pgbackrest['repository_bytes'])} in the repository (of {_mb(pgbackrest['size_bytes'])})",
                      pgbackrest, context.cores),
            _step_row("backup", f"pg_dump -Fc on {hosts['db']}", f(dump["seconds"]), f"{_mb(dump['file_bytes'])} file",
                      dump, context.cores),
            _step_row("restore", f"drill: pgbackrest restore + WAL replay on {hosts['backup']}",
                      f(drill["restore_seconds"]) + drill_total, "-", drill, context.cores),
            _step_row("restore", f"pg_restore -j {restore['jobs']} on {hosts['db']}", f(restore["seconds"]), "-",
                      restore, context.cores)]
        out.append(table(["step", "side", "seconds", "stored", "busiest host CPU", "busiest process (% of a core)",
                          "what saturated"], rows))
        r = ratios(size)
        out.append(f"\npgBackRest / pg_dump at {jobs} jobs: backup time {_x(r['backup_time'])}, stored size "
                   f"{_x(r['size'])}; restore time (drill restore / pg_restore) {_x(r['restore_time'])}.\n")
        if not drill["passed"]:
            out.append(f"The drill failed: {drill.get('error') or 'no reason recorded'}.\n")
    return "\n".join(out)


def headline(data: dict[str, Any], context: ReportContext) -> str:
    done = _done(data)
    if not done:
        return "-"
    size = done[-1]
    r = ratios(size)
    return (f"at {f(size['jobs'])} jobs: backup {f(size['pgbackrest']['seconds'], 0)} s vs pg_dump "
            f"{f(size['pg_dump']['seconds'], 0)} s ({_x(r['backup_time'])}), stored {_x(r['size'])} the dump's size; "
            f"restore {f(size['drill']['restore_seconds'], 0)} s vs pg_restore {f(size['pg_restore']['seconds'], 0)} s "
            f"({_x(r['restore_time'])})")


def verdict(data: dict[str, Any], context: ReportContext) -> str:
    """No claim to judge: what each size measured, what saturated in each step, and which sizes are missing."""
    parts = []
    for size in data["sizes"]:
        if "pg_restore" not in size:
            parts.append(f"{f(size['jobs'])} jobs not measured ({size.get('skipped') or 'failed'})")
            continue
        saturated = []
        for key, _, what in STEPS:
            resource = saturation(size[key]["usage"], context.cores)["resource"]
            saturated.append(f"{what}: {resource}")
        text = f"{f(size['jobs'])} jobs, saturated: " + "; ".join(saturated)
        if not size["drill"]["passed"]:
            text += " (the drill FAILED)"
        parts.append(text)
    blind = [what for size in _done(data) for key, _, what in STEPS
             if saturation(size[key]["usage"], context.cores)["resource"] in ("nothing measured", "too short to judge")]
    tail = (" Where nothing measured saturated (or a step was too short to judge), the figure is not yet a limit "
            "of the system." if blind else "")
    return "no claim; " + ". ".join(parts) + "." + tail
