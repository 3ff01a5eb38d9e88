"""What the numbers were measured on: CPU model, cores, RAM, kernel and the load average at the time."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

# A 1-minute load average at or above this when a run starts: the machine is shared right now.
QUIET_LOAD = 1.5
# How long each idle CPU sample lasts (before the run and before each part, while the bench generates no load).
IDLE_SAMPLE_SECONDS = 5.0


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first `model name` in /proc/cpuinfo ("unknown" if absent)."""
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemTotal in bytes."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no MemTotal line in {meminfo}")


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def describe() -> dict[str, object]:
    """The machine as recorded in every results file."""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "memory_bytes": memory_bytes(),
            "kernel": platform.release(), "python": platform.python_version(), "load_average": load_average()}


def cpu_times(stat: Path = Path("/proc/stat")) -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat (idle and iowait are not busy)."""
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_percent(seconds: float) -> float:
    """How busy the whole machine is over `seconds` (100 = every core busy). Called while the bench itself
    generates no load, it measures everyone else: other sessions, and the lab's own background work
    (autovacuum after a reseed, timers)."""
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return round(100.0 * (busy1 - busy0) / max(total1 - total0, 1), 1)


def _namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def cpu_seconds_by_namespace(init_pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by every process in each lab host's PID namespace (name -> seconds).

    Lab hosts run with `--register=no --keep-unit`, so they have no cgroup of their own: processes are
    grouped by the PID namespace of each host's systemd. utime+stime of the living processes plus the
    cutime+cstime they collected from children that exited (short-lived PostgreSQL backends, ssh sessions),
    so a difference of two samples is the host's CPU use in between.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    wanted = {_namespace(pid): name for name, pid in init_pids.items()}
    wanted.pop(None, None)
    totals = {name: 0.0 for name in init_pids}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        name = wanted.get(_namespace(int(entry.name)))
        if name is None:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited between listing and reading: its parent's cutime has it next time
        # After the command name: state is field 3 of proc(5), utime 14, stime 15, cutime 16, cstime 17.
        totals[name] += sum(int(v) for v in fields[11:15]) / ticks
    return totals


def cpu_breakdown(stat: Path = Path("/proc/stat")) -> tuple[int, int, int]:
    """(busy, iowait, total) jiffies of the whole machine: `cpu_times` with the time spent waiting for I/O apart
    (an idle core with I/O outstanding: a sign of a disk the CPU waits for, not proof of one)."""
    fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], fields[4], sum(fields)


def disk_counters(diskstats: Path = Path("/proc/diskstats"),
                  block: Path = Path("/sys/block")) -> dict[str, tuple[int, int, int]]:
    """Per whole disk (not partitions, RAM disks or zram): (milliseconds with I/O in flight, sectors read,
    sectors written), cumulative. Two samples give a disk's utilisation (busy ms / elapsed ms) and throughput."""
    disks = {entry.name for entry in block.iterdir()} if block.is_dir() else set()
    counters = {}
    for line in diskstats.read_text().splitlines():
        fields = line.split()
        if len(fields) < 14 or (disks and fields[2] not in disks) or fields[2].startswith(("ram", "zram")):
            continue
        # proc(5)/iostats: name is field 3; sectors read 6, sectors written 10, ms doing I/O 13 (1-based).
        counters[fields[2]] = (int(fields[12]), int(fields[5]), int(fields[9]))
    return counters


def process_cpu_seconds(init_pids: dict[str, int]) -> dict[str, tuple[str, str, float]]:
    """Every living process in the lab hosts' PID namespaces: "pid:starttime" -> (host, command, CPU seconds it
    used itself so far). Unlike `cpu_seconds_by_namespace` this leaves out the children's time, so that two
    samples show which single process was busy (a single-threaded tool at 100 % of one core)."""
    ticks = os.sysconf("SC_CLK_TCK")
    wanted = {_namespace(pid): name for name, pid in init_pids.items()}
    wanted.pop(None, None)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        name = wanted.get(_namespace(int(entry.name)))
        if name is None:
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        # After the command name: utime is field 14 of proc(5), stime 15, starttime 22.
        found[f"{entry.name}:{fields[19]}"] = (name, command, (int(fields[11]) + int(fields[12])) / ticks)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by process `pid` and its living children, plus what they collected from
    children that exited (a Gunicorn master and its workers, recycled ones included). 0 if `pid` is gone."""
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    total = 0.0
    for member in [str(pid), *children]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of proc(5).
        total += sum(int(v) for v in fields[11:15]) / ticks
    return total
