"""`talentsphere monitor`: system, PostgreSQL, pool and Redis figures in one view, to find what limits the app.

System figures come from /proc and os (no extra dependency); PostgreSQL figures from the statistics views
the app role may read; pg_stat_statements only when the extension is installed; the Redis hit rate from
the hit/miss totals the app itself records in Redis.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from .cache import Cache
from .db import Database


def _cpu_times() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def system_stats(sample_seconds: float = 0.2) -> dict[str, Any]:
    """CPU use over a short sample, load, memory and disk."""
    total0, idle0 = _cpu_times()
    time.sleep(sample_seconds)
    total1, idle1 = _cpu_times()
    busy = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024
               for line in Path("/proc/meminfo").read_text().splitlines() if line.split()[1:]}
    disk = shutil.disk_usage("/")
    return {
        "cpu_count": os.cpu_count(), "cpu_percent": round(busy * 100, 1), "load_average": os.getloadavg(),
        "memory_total_bytes": meminfo.get("MemTotal"), "memory_available_bytes": meminfo.get("MemAvailable"),
        "memory_percent": round(100 * (1 - meminfo.get("MemAvailable", 0) / max(meminfo.get("MemTotal", 1), 1)), 1),
        "disk_total_bytes": disk.total, "disk_free_bytes": disk.free,
        "disk_percent": round(100 * disk.used / disk.total, 1),
    }


def database_stats(engine: Engine, slow_threshold: float, top: int = 10) -> dict[str, Any]:
    """Connections by state, cache hit ratio, size, top statements, index usage."""
    with engine.connect() as conn:
        states = {state or "unknown": count for state, count in conn.execute(text(
            "SELECT state, count(*) FROM pg_stat_activity WHERE datname = current_database() GROUP BY state"))}
        hit, read = conn.execute(text(
            "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()")).one()
        size = conn.scalar(text("SELECT pg_database_size(current_database())"))
        indexes = [dict(row._mapping) for row in conn.execute(text(
            "SELECT indexrelname AS index, relname AS table, idx_scan AS scans, "
            "pg_relation_size(indexrelid) AS size_bytes FROM pg_stat_user_indexes "
            "ORDER BY idx_scan DESC, indexrelname"))]
        has_statements = bool(conn.scalar(text(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")))
        statements: list[dict[str, Any]] | None = None
        if has_statements:
            statements = [dict(row._mapping) for row in conn.execute(text(
                "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls, "
                "round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 2) AS mean_ms, "
                "mean_exec_time > :slow_ms AS slow FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY total_exec_time DESC LIMIT :top"), {"top": top, "slow_ms": slow_threshold * 1000})]
    for row in statements or []:
        row["total_ms"], row["mean_ms"] = float(row["total_ms"]), float(row["mean_ms"])
    return {
        "connections_by_state": states,
        "cache_hit_ratio": round(hit / (hit + read), 4) if hit + read else None,
        "size_bytes": size,
        "top_statements": statements,
        "pg_stat_statements": "installed" if has_statements else
        "not installed (as superuser: CREATE EXTENSION pg_stat_statements; needs shared_preload_libraries)",
        "indexes_used": [i for i in indexes if i["scans"]][:top],
        "indexes_unused": [i["index"] for i in indexes if not i["scans"]],
    }


def redis_stats(cache: Cache) -> dict[str, Any]:
    """App-counted cache hits/misses and the hit rate."""
    stats = cache.stats()
    if stats is None:
        return {"available": False}
    lookups = stats["hits"] + stats["misses"]
    return {"available": True, **stats, "hit_rate": round(stats["hits"] / lookups, 4) if lookups else None}


def collect(database: Database, cache: Cache, slow_threshold: float) -> dict[str, Any]:
    """Everything `talentsphere monitor` shows."""
    assert database.engine is not None
    return {
        "system": system_stats(),
        "database": database_stats(database.engine, slow_threshold),
        "pool": database.pool_status(),
        "redis": redis_stats(cache),
    }


def render_text(report: dict[str, Any]) -> str:
    """Human-readable form of ``collect``'s result."""
    system, database, redis_part = report["system"], report["database"], report["redis"]
    gib = 1024 ** 3
    lines = [
        f"CPU      {system['cpu_percent']}% of {system['cpu_count']} cores, load {system['load_average']}",
        f"Memory   {system['memory_percent']}% used of {system['memory_total_bytes'] / gib:.1f} GiB",
        f"Disk     {system['disk_percent']}% used, {system['disk_free_bytes'] / gib:.1f} GiB free",
        f"DB       connections {database['connections_by_state']}, cache hit ratio {database['cache_hit_ratio']}, "
        f"size {database['size_bytes'] / 1024 ** 2:.0f} MiB",
        f"Pool     {report['pool']}",
        "Redis    " + (f"hit rate {redis_part['hit_rate']} ({redis_part['hits']} hits, {redis_part['misses']} misses)"
                       if redis_part["available"] else "unavailable"),
        f"pg_stat_statements: {database['pg_stat_statements']}",
    ]
    for row in database["top_statements"] or []:
        flag = " SLOW" if row["slow"] else ""
        lines.append(f"  {row['total_ms']:>10.1f} ms {row['calls']:>8} calls {row['mean_ms']:>8.2f} ms/call{flag}  "
                     f"{row['query'][:100]}")
    lines.append("Most used indexes:")
    lines += [f"  {i['scans']:>10} {i['index']} ({i['table']})" for i in database["indexes_used"]]
    lines.append(f"Unused indexes: {len(database['indexes_unused'])}")
    return "\n".join(lines)
