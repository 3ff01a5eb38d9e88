"""PostgreSQL tuning: PGTune's algorithm as a pure function, plus connection demand derived from the topology.

Public API (stable; the postgres role calls it through `tsdeploy.context`, the `tune` command prints it):

    tune(*, memory, cpus, storage, profile, pg_version, connections=None, os_type="linux",
         db_size="mid_ram") -> Tuning
        memory      total RAM of the database host in bytes (`tsdeploy.units.parse_size` reads "16GB")
        cpus        CPU count (>= 1)
        storage     "ssd" | "hdd" | "san" | "nvme"
        profile     "web" | "oltp" | "dw" | "desktop" | "mixed"
        pg_version  PostgreSQL major version (10 or newer)
        connections max_connections; None takes PGTune's per-profile default
        os_type     "linux" | "windows" | "mac"
        db_size     "less_ram" | "mid_ram" | "greater_ram": how the data compares with RAM (PGTune's
                    "DB size" input; its default "mid_ram" leaves the other settings untouched)
    Tuning.settings   ordered dict: name -> Setting(value, reason); `value` as written in postgresql.conf,
                      in PGTune's order; `Tuning.as_conf()` renders "# reason" + "name = value" lines
    Tuning.warnings   PGTune's own warnings, one sentence each (the demand checks are separate: call
                      `demand_warnings`, with the topology when there is one, so its fixes can name it)
    Tuning.work_mem_kb, Tuning.shared_buffers_kb, Tuning.max_connections   the numbers behind the strings

    topology_connections(*, app_hosts, workers, pool_size, max_overflow, headroom) -> (int, reason)
        max_connections = app_hosts x workers x (pool_size + max_overflow) + headroom
    demand_warnings(*, tuning, memory, topology=None, limit=None) -> list[str]
        does the demand fit the memory (work_mem x max_connections) and a connection limit; each warning
        names a concrete fix (fewer workers, a smaller pool, a pooler)
    parse_cpus(4) -> 4; raises ValueError naming the accepted form (sizes: `tsdeploy.units.parse_size`)

Source reproduced: le0pard/pgtune master, `src/features/configuration/configurationSlice.js` (the selectors)
and `src/common/components/configurationView/index.jsx` (`formatValue` and the output order). The newest
stored version of the slice includes the PostgreSQL 18 asynchronous I/O selectors (`selectIoMethod`,
`selectIoWorkers`, added at commit 421728c2f26fae14285f9805d31198b98925d697) and the "DB size" input
(`selectDBSize`, newer than 421728c2); the reference index we read it from does not record the commit hash of
that newest version, so the pinned tests cite the selector names and the commit 421728c2 baseline. Arithmetic
is done in IEEE doubles exactly as the JavaScript does (`/ 1024`, `Math.floor`).

No deliberate differences from PGTune: every PGTune output for the same inputs is reproduced as is. What we
add on top is separate and named: `topology_connections` (an input to `connections`) and `demand_warnings`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Storage = Literal["ssd", "hdd", "san", "nvme"]
Profile = Literal["web", "oltp", "dw", "desktop", "mixed"]
OsType = Literal["linux", "windows", "mac"]
DbSize = Literal["less_ram", "mid_ram", "greater_ram"]

STORAGES: tuple[str, ...] = ("ssd", "hdd", "san", "nvme")
PROFILES: tuple[str, ...] = ("web", "oltp", "dw", "desktop", "mixed")
OS_TYPES: tuple[str, ...] = ("linux", "windows", "mac")
DB_SIZES: tuple[str, ...] = ("less_ram", "mid_ram", "greater_ram")
MIN_PG_VERSION = 10  # PGTune's DB_VERSIONS list starts at 10

#: Connections kept free beyond the app's pools: PostgreSQL's superuser_reserved_connections (3) plus
#: migrations, the flush-views timer, monitoring and an operator's psql session.
DEFAULT_HEADROOM = 10

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB
# PGTune works in kB: these are its thresholds expressed in kB (SIZE_UNIT_MAP[X] / SIZE_UNIT_MAP['KB']).
_MB_IN_KB = 1024
_GB_IN_KB = 1024 * 1024

# selectMaxConnections: the default when no connection count is given.
_DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# selectCheckpointSegments: min_wal_size / max_wal_size in MB per profile.
_MIN_WAL_MB = {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}
_MAX_WAL_MB = {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}
# selectEffectiveIoConcurrency (Linux only).
_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}
# DEFAULT_DB_SETTINGS.default.max_worker_processes: used for work_mem when PGTune sets no parallel settings.
_DEFAULT_MAX_WORKER_PROCESSES = 8


@dataclass(frozen=True)
class Setting:
    """One postgresql.conf setting: `value` exactly as written in the file, `reason` one sentence why."""

    value: str
    reason: str


@dataclass
class Tuning:
    """The result of `tune`: settings in PGTune's order, warnings, and the numbers behind them."""

    settings: dict[str, Setting]
    warnings: list[str] = field(default_factory=list)
    max_connections: int = 0
    shared_buffers_kb: int = 0
    work_mem_kb: int = 0

    def as_conf(self) -> str:
        """postgresql.conf lines, each preceded by a `# reason` comment."""
        return "".join(f"# {s.reason}\n{name} = {s.value}\n" for name, s in self.settings.items())


@dataclass(frozen=True)
class Topology:
    """How many PostgreSQL connections the app tier can open: hosts x workers x (pool + overflow), or, behind
    a connection pooler, what the poolers open (`pooled`: their pools and reserves, summed over pooler hosts)."""

    app_hosts: int
    workers: int
    pool_size: int
    max_overflow: int
    headroom: int = DEFAULT_HEADROOM
    pooled: int = 0

    @property
    def demand(self) -> int:
        """Connections the app can hold open at peak (every worker's pool full, overflow included), or the
        poolers' server connections when the app goes through them."""
        if self.pooled:
            return self.pooled
        return self.app_hosts * self.workers * (self.pool_size + self.max_overflow)

    def explain(self) -> str:
        """The demand's formula with its numbers, for the max_connections reason."""
        if self.pooled:
            return f"{self.pooled} server connections of the poolers (pool + reserve) + {self.headroom} headroom"
        return (f"{self.app_hosts} app hosts x {self.workers} workers x (pool {self.pool_size} + overflow "
                f"{self.max_overflow}) + {self.headroom} headroom")

    @property
    def max_connections(self) -> int:
        """The demand plus the headroom kept for superusers, migrations, cron and monitoring."""
        return self.demand + self.headroom


def format_kb(value_kb: float) -> str:
    """PGTune's `formatValue`: the largest of GB/MB/kB that shows the value without losing resolution."""
    if value_kb % _GB_IN_KB == 0:
        return f"{math.floor(value_kb / _GB_IN_KB)}GB"
    if value_kb % _MB_IN_KB == 0:
        return f"{math.floor(value_kb / _MB_IN_KB)}MB"
    return f"{_js_number(value_kb)}kB"


def _js_number(value: float) -> str:
    """A number as JavaScript's `String(n)` prints it for the values PGTune produces (4, 1.1, 0.9)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _human(value_bytes: float) -> str:
    """Bytes in the largest binary unit, one decimal, for warnings ("3.0 GiB")."""
    for unit, size in (("TiB", TB), ("GiB", GB), ("MiB", MB)):
        if value_bytes >= size:
            return f"{value_bytes / size:.1f} {unit}"
    return f"{value_bytes / KB:.1f} KiB"


def parse_cpus(value: str | int) -> int:
    """Parse a CPU count: a whole number of at least 1."""
    try:
        cpus = int(str(value).strip())
    except ValueError:
        cpus = 0
    if cpus < 1:
        raise ValueError(f"cannot use CPU count {value!r}: expected a whole number of at least 1, like 4")
    return cpus


def _check_inputs(memory: int, cpus: int, storage: str, profile: str, pg_version: int,
                  connections: int | None, os_type: str, db_size: str) -> None:
    """Reject inputs PGTune's form would reject, each with the field, the value and the accepted form."""
    choices = {"storage": (storage, STORAGES), "profile": (profile, PROFILES),
               "os_type": (os_type, OS_TYPES), "db_size": (db_size, DB_SIZES)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    if not isinstance(memory, int) or memory <= 0:
        raise ValueError(f"memory {memory!r} must be a positive number of bytes "
                         "(tsdeploy.units.parse_size reads '16GB')")
    if not isinstance(cpus, int) or cpus < 1:
        raise ValueError(f"cpus {cpus!r} must be a whole number of at least 1")
    if not isinstance(pg_version, int) or pg_version < MIN_PG_VERSION:
        raise ValueError(f"pg_version {pg_version!r} must be a PostgreSQL major version of {MIN_PG_VERSION} or newer")
    if connections is not None and (not isinstance(connections, int) or connections < 1):
        raise ValueError(f"connections {connections!r} must be a whole number of at least 1, or omitted")


def _parallel_settings(cpus: int, profile: str, pg_version: int) -> list[tuple[str, int]]:
    """selectParallelSettings: only for 4 or more CPUs; per-gather capped at 4 except for data warehouses."""
    if cpus < 4:
        return []
    per_gather = math.ceil(cpus / 2)
    if profile != "dw" and per_gather > 4:
        per_gather = 4
    config = [("max_worker_processes", cpus), ("max_parallel_workers_per_gather", per_gather)]
    if pg_version >= 10:
        config.append(("max_parallel_workers", cpus))
    if pg_version >= 11:
        config.append(("max_parallel_maintenance_workers", min(math.ceil(cpus / 2), 4)))
    return config


def tune(*, memory: int, cpus: int, storage: Storage, profile: Profile, pg_version: int,
         connections: int | None = None, os_type: OsType = "linux", db_size: DbSize = "mid_ram") -> Tuning:
    """PGTune's recommendations for one database host, each setting with the reason PGTune chose it.

    + memory: total RAM in bytes
    + cpus: CPU count
    + storage: ssd | hdd | san | nvme
    + profile: web | oltp | dw | desktop | mixed
    + pg_version: PostgreSQL major version
    + connections: max_connections (None: PGTune's default for the profile)
    + os_type: linux | windows | mac
    + db_size: less_ram | mid_ram | greater_ram

    >>> tune(memory=16 * 1024 ** 3, cpus=4, storage="ssd", profile="web", pg_version=15).settings["work_mem"].value
    '20560kB'
    """
    _check_inputs(memory, cpus, storage, profile, pg_version, connections, os_type, db_size)
    total_kb = memory / KB  # selectTotalMemoryInKb: a double, as in JavaScript
    win_pre18 = os_type == "windows" and pg_version <= 17

    # selectMaxConnections
    max_connections = connections if connections else _DEFAULT_CONNECTIONS[profile]
    conn_reason = (f"{max_connections} connections asked for" if connections
                   else f"PGTune's default for the {profile} profile")

    # selectSharedBuffers: 1/4 of RAM (1/16 for desktop); <10 on Windows capped at 512MB (unreachable: >=10).
    shared_buffers = math.floor(total_kb / 16) if profile == "desktop" else math.floor(total_kb / 4)
    sb_share = "1/16" if profile == "desktop" else "1/4"

    # selectHugePages: try from 2GB of shared_buffers, never on macOS.
    huge_pages = "off" if os_type == "mac" or shared_buffers < 2 * _GB_IN_KB else "try"

    # selectEffectiveCacheSize: 3/4 of RAM (1/4 for desktop).
    cache_size = math.floor(total_kb / 4) if profile == "desktop" else math.floor(total_kb * 3 / 4)

    # selectMaintenanceWorkMem: 1/16 of RAM (1/8 for dw), capped at 8GB (2GB - 1MB on Windows up to PG 17).
    maintenance = math.floor(total_kb / 8) if profile == "dw" else math.floor(total_kb / 16)
    maintenance_limit = 2 * _GB_IN_KB if win_pre18 else 8 * _GB_IN_KB
    maintenance_capped = maintenance >= maintenance_limit
    if maintenance_capped:
        maintenance = maintenance_limit - _MB_IN_KB if win_pre18 else maintenance_limit

    # selectWalBuffers: 3% of shared_buffers, at most 16MB, rounded up to 16MB above 14MB, at least 32kB.
    wal_buffers = math.floor(3 * shared_buffers / 100)
    wal_buffers = min(wal_buffers, 16 * _MB_IN_KB)
    if 14 * _MB_IN_KB < wal_buffers < 16 * _MB_IN_KB:
        wal_buffers = 16 * _MB_IN_KB
    wal_buffers = max(wal_buffers, 32)

    # selectRandomPageCost
    if db_size == "less_ram":
        random_page_cost, rpc_reason = 1.1, "the data fits in RAM, so reads come from the page cache"
    elif storage == "hdd":
        random_page_cost, rpc_reason = 4, "spinning disks: random reads cost 4x a sequential read"
    elif profile == "dw":
        random_page_cost, rpc_reason = 4, "data warehouse larger than RAM: keep the default to avoid index-scan traps"
    else:
        random_page_cost, rpc_reason = 1.1, f"{storage} storage: random reads cost about as much as sequential"

    # selectEffectiveIoConcurrency (Linux only)
    io_concurrency = _IO_CONCURRENCY[storage] if os_type == "linux" else None

    parallel = _parallel_settings(cpus, profile, pg_version)

    # selectWorkMem: (RAM - shared_buffers) / ((max_connections + max_worker_processes) * 3), per profile.
    workers_for_work_mem = parallel[0][1] if parallel else _DEFAULT_MAX_WORKER_PROCESSES
    work_mem_raw = (total_kb - shared_buffers) / ((max_connections + workers_for_work_mem) * 3)
    divisor = {"web": 1, "oltp": 1, "dw": 2, "desktop": 6, "mixed": 2}[profile]
    work_mem = math.floor(work_mem_raw / divisor) if divisor != 1 else math.floor(work_mem_raw)
    if db_size == "less_ram":
        work_mem = math.floor(work_mem * 1.3)
    elif db_size == "greater_ram":
        work_mem = math.floor(work_mem * 0.9)
    work_mem_floored = work_mem < 4 * _MB_IN_KB
    work_mem = max(work_mem, 4 * _MB_IN_KB)
    if win_pre18:
        work_mem = min(work_mem, 2 * _GB_IN_KB - _MB_IN_KB)

    # selectJit, selectWalCompression, selectAutovacuumMaxWorkers, selectAutovacuumWorkMem
    jit = "off" if pg_version >= 12 and profile in ("web", "oltp", "mixed") else None
    wal_compression = "lz4" if pg_version >= 15 else "on"
    autovacuum_workers = 5 if cpus >= 32 else 4 if cpus >= 16 else None
    autovacuum_work_mem = 2 * _GB_IN_KB if maintenance >= 2 * _GB_IN_KB else None
    if autovacuum_work_mem is not None and win_pre18:
        autovacuum_work_mem = min(autovacuum_work_mem, 2 * _GB_IN_KB - _MB_IN_KB)

    # selectIoWorkers / selectIoMethod (PostgreSQL 18 asynchronous I/O)
    io_workers = None
    if pg_version >= 18:
        candidate = min(32, max(3, math.floor(cpus / 4)))
        io_workers = candidate if candidate > 3 else None
    io_method = None if pg_version < 18 else "io_uring" if os_type == "linux" else "worker"

    work_mem_reason = (f"(RAM - shared_buffers) / ((max_connections {max_connections} + "
                       f"max_worker_processes {workers_for_work_mem}) x 3)"
                       + (f" / {divisor} for {profile}" if divisor != 1 else "")
                       + {"less_ram": ", +30% as the data fits in RAM",
                          "greater_ram": ", -10% as the data outgrows RAM", "mid_ram": ""}[db_size]
                       + (", raised to PGTune's 4MB floor" if work_mem_floored else ""))
    entries: list[tuple[str, object, str]] = [
        ("max_connections", max_connections, conn_reason),
        ("shared_buffers", format_kb(shared_buffers), f"{sb_share} of RAM for PostgreSQL's own cache"),
        ("effective_cache_size", format_kb(cache_size),
         f"{'1/4' if profile == 'desktop' else '3/4'} of RAM: what the planner may assume is cached (OS + shared_buffers)"),
        ("maintenance_work_mem", format_kb(maintenance),
         f"{'1/8' if profile == 'dw' else '1/16'} of RAM for VACUUM and CREATE INDEX"
         + (f", capped at {format_kb(maintenance)}" if maintenance_capped else "")),
        ("checkpoint_completion_target", _js_number(0.9),
         "spread checkpoint writes over 90% of the interval (PostgreSQL 14's default)"),
        ("wal_buffers", format_kb(wal_buffers), "3% of shared_buffers, between 32kB and 16MB"),
        ("default_statistics_target", 500 if profile == "dw" else 100,
         "more detailed statistics for analytical queries" if profile == "dw" else "PostgreSQL's default sample"),
        ("random_page_cost", _js_number(random_page_cost), rpc_reason),
        ("effective_io_concurrency", io_concurrency, f"concurrent I/O requests {storage} storage serves well"),
        ("work_mem", format_kb(work_mem), work_mem_reason),
        ("huge_pages", huge_pages,
         "shared_buffers of 2GB or more gains from huge pages" if huge_pages == "try"
         else "shared_buffers under 2GB (or macOS): huge pages not worth it"),
        ("jit", jit, "JIT costs CPU and planning time on short OLTP/web queries"),
        ("wal_compression", wal_compression,
         "compress full-page images in WAL with lz4 (PostgreSQL 15+)" if wal_compression == "lz4"
         else "compress full-page images in WAL (pglz)"),
        ("autovacuum_max_workers", autovacuum_workers, f"{cpus} CPUs can run more autovacuum workers"),
        ("autovacuum_work_mem", format_kb(autovacuum_work_mem) if autovacuum_work_mem else None,
         "cap each autovacuum worker at 2GB so several cannot exhaust RAM"),
        ("io_method", io_method, "asynchronous I/O through io_uring on Linux" if io_method == "io_uring"
         else "asynchronous I/O through worker processes"),
        ("io_workers", io_workers, f"about a quarter of {cpus} CPUs for asynchronous I/O workers"),
        ("min_wal_size", format_kb(_MIN_WAL_MB[profile] * _MB_IN_KB), f"WAL kept recycled for the {profile} profile"),
        ("max_wal_size", format_kb(_MAX_WAL_MB[profile] * _MB_IN_KB),
         f"WAL between checkpoints for the {profile} profile"),
    ]
    parallel_reasons = {
        "max_worker_processes": f"one background worker per CPU ({cpus})",
        "max_parallel_workers_per_gather": "half the CPUs per query" + (", at most 4" if profile != "dw" else ""),
        "max_parallel_workers": f"parallel workers across all queries: one per CPU ({cpus})",
        "max_parallel_maintenance_workers": "half the CPUs for parallel index builds, at most 4",
    }
    entries += [(name, value, parallel_reasons[name]) for name, value in parallel]
    if profile == "desktop":
        entries += [("wal_level", "minimal", "desktop: no replication, so write the least WAL"),
                    ("max_wal_senders", "0", "required by wal_level = minimal")]

    # The view drops falsy values (`.filter((item) => !!item[1])`): None, 0 and "" are left at PG's default.
    settings = {name: Setting(str(value), reason) for name, value, reason in entries if value}
    tuning = Tuning(settings=settings, max_connections=max_connections,
                    shared_buffers_kb=shared_buffers, work_mem_kb=work_mem)
    tuning.warnings = _pgtune_warnings(memory, wal_compression, io_method, profile, storage, db_size)
    return tuning


def _pgtune_warnings(memory: int, wal_compression: str, io_method: str | None, profile: str,
                     storage: str, db_size: str) -> list[str]:
    """selectWarningInfoMessages, one sentence per warning group."""
    warnings = []
    if memory < 256 * MB:
        warnings.append("PGTune is not optimal for low memory systems (under 256MB)")
    elif memory > 100 * GB:
        warnings.append("PGTune is not optimal for very high memory systems (over 100GB)")
    if wal_compression == "lz4":
        warnings.append("wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4")
    if io_method == "io_uring":
        warnings.append("io_method = io_uring requires PostgreSQL to be compiled with --with-liburing")
    if profile == "dw" and storage != "hdd" and db_size != "less_ram":
        drive = {"ssd": "SSDs", "nvme": "NVMe drives", "san": "SAN storage"}[storage]
        warnings.append(f"Cost parameters for Data Warehouses on {drive} are left at defaults to avoid "
                        "catastrophic index scan selections; monitor query planner behavior and adjust "
                        "random_page_cost if necessary")
    return warnings


def topology_connections(*, app_hosts: int, workers: int, pool_size: int, max_overflow: int,
                         headroom: int = DEFAULT_HEADROOM) -> tuple[int, str]:
    """max_connections the app tier needs: app_hosts x workers x (pool_size + max_overflow) + headroom.

    >>> topology_connections(app_hosts=2, workers=5, pool_size=5, max_overflow=5, headroom=10)[0]
    110
    """
    for name, value, minimum in (("app_hosts", app_hosts, 1), ("workers", workers, 1),
                                 ("pool_size", pool_size, 1), ("max_overflow", max_overflow, 0),
                                 ("headroom", headroom, 0)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} {value!r} must be a whole number of at least {minimum}")
    topo = Topology(app_hosts, workers, pool_size, max_overflow, headroom)
    reason = (f"{app_hosts} app hosts x {workers} workers x (pool {pool_size} + overflow {max_overflow}) "
              f"= {topo.demand}, + {headroom} headroom")
    return topo.max_connections, reason


def _fixes(topology: Topology, target: int) -> str:
    """Concrete ways to bring the topology's max_connections down to `target`."""
    budget = target - topology.headroom
    per_worker = budget // (topology.app_hosts * topology.workers) if budget > 0 else 0
    workers = budget // (topology.app_hosts * (topology.pool_size + topology.max_overflow)) if budget > 0 else 0
    options = []
    if workers >= 1:
        options.append(f"run at most {workers} Gunicorn workers per app host")
    if per_worker >= 1:
        pool = min(topology.pool_size, per_worker)
        options.append(f"size each worker's pool to at most {per_worker} (pool_size {pool}, "
                       f"max_overflow {per_worker - pool})")
    options.append("or put a pooler (PgBouncer, transaction mode) between the app and PostgreSQL")
    return "; ".join(options)


def demand_warnings(*, tuning: Tuning, memory: int, topology: Topology | None = None,
                    limit: int | None = None) -> list[str]:
    """Warnings when the connection demand does not fit the memory or a connection limit, with a fix each.

    Memory: every connection may use at least one work_mem at once, so work_mem x max_connections must fit
    in RAM - shared_buffers (PGTune's formula assumes 3 per connection; it only stops holding when work_mem
    hits PGTune's 4MB floor). Limit: the topology's max_connections must not exceed `limit` (a database
    plan's limit, or an explicit max_connections).
    """
    warnings = []
    available_kb = memory / KB - tuning.shared_buffers_kb
    needed_kb = tuning.work_mem_kb * tuning.max_connections
    if needed_kb > available_kb:
        fit = max(int(available_kb // tuning.work_mem_kb), 0)
        fix = (_fixes(topology, fit) if topology else
               "use fewer connections, or put a pooler (PgBouncer, transaction mode) in front of PostgreSQL")
        warnings.append(f"work_mem {format_kb(tuning.work_mem_kb)} x {tuning.max_connections} connections = "
                        f"{_human(needed_kb * KB)} does not fit the {_human(available_kb * KB)} of RAM left after "
                        f"shared_buffers; at most {fit} connections fit: {fix}")
    if topology is not None and limit is not None and topology.max_connections > limit:
        warnings.append(f"the app tier needs {topology.max_connections} connections "
                        f"({topology.demand} + {topology.headroom} headroom) but the limit is {limit}: "
                        f"{_fixes(topology, limit)}")
    return warnings
