"""The metric names the monitoring files may read: what Debian's exporters and the app really export.

`exported_names()` runs the node, postgres, redis and blackbox exporters of this machine against a throwaway
PostgreSQL cluster, Redis and TLS server and collects the sample names they answer with, plus the app's own
metrics (from its registry) and Prometheus's `up`. `metric_names(expr)` reads the metric names a PromQL
expression names. The alert rules, the recording rules and the Grafana dashboards are all checked against
these, so a name that no exporter of the Debian release exports fails a test instead of drawing an empty graph.

Skipped without the exporters, root or the postgres account (`make system-deps` installs them).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

import talentsphere.metrics  # noqa: F401  (registers the app's metrics)
from local_postgres import has_postgres_account, newest_postgresql_bin
from redis_server import free_port
from roles.backup.metrics import METRICS as BACKUP_METRICS

EXPORTERS = ("prometheus-node-exporter", "prometheus-postgres-exporter", "prometheus-redis-exporter",
             "prometheus-blackbox-exporter")
#: Prometheus's own series for every scrape target: no exporter exports it.
PROMETHEUS_SERIES = {"up"}
#: PromQL words that look like metric names: aggregations, functions, set operators and modifiers.
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "atan2", "start", "end", "inf", "nan",
    "sum", "max", "min", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values",
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln", "log2", "log10",
    "minute", "month", "predict_linear", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
    "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}


def installed(program: str) -> bool:
    return shutil.which(program, path="/usr/bin:/usr/sbin:/bin:/sbin") is not None


needs_promtool = pytest.mark.skipif(not installed("promtool"),
                                    reason="needs promtool (apt-get install prometheus)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, grouping labels and ranges left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {word for word in words if word.lower() not in PROMQL_WORDS}


def scrape(port: int, path: str = "/metrics", timeout: float = 15.0) -> set[str]:
    """The sample names an exporter answers with (waiting for it to listen)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                text = response.read().decode()
            break
        except OSError:
            assert time.monotonic() < deadline, f"nothing answered on 127.0.0.1:{port}{path}"
            time.sleep(0.2)
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and line[0] != "#"}


def start(*command: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=None if env is None else os.environ | env)


def app_samples() -> set[str]:
    """Sample names of the app's metrics, as its /metrics names them once they have values."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "gauge": ("",), "summary": ("_count", "_sum", "_created")}
    return {family.name + suffix for family in REGISTRY.collect() if family.name.startswith("talentsphere_")
            for suffix in suffixes.get(family.type, ("",))}


def exported_names() -> Iterator[set[str]]:
    """Yield every sample name the exporters and the app export, for a module-scoped fixture to hold."""
    missing = [program for program in EXPORTERS if not installed(program)]
    if missing or os.geteuid() != 0 or not has_postgres_account():
        pytest.skip(f"needs root, the postgres account and {', '.join(missing) or 'the exporters'} "
                    "(apt-get install " + " ".join(EXPORTERS) + ")")
    # Not under pytest's 0700 temp root: the cluster runs as postgres, which must reach its directory.
    with tempfile.TemporaryDirectory(prefix="ts-exporters-") as scratch:
        base = pathlib.Path(scratch)
        shutil.chown(base, "postgres")
        yield from _exporters(base)


def _exporters(base: pathlib.Path) -> Iterator[set[str]]:
    processes: list[subprocess.Popen] = []
    pg_bin, pg_port = newest_postgresql_bin(), free_port()
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "initdb"), "-D", str(base / "pg"),
                        "-A", "trust", "--no-sync"], check=True, capture_output=True)
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "pg_ctl"), "-D", str(base / "pg"), "-w",
                        "-l", str(base / "pg.log"), "-o", f"-p {pg_port} -k {base} -c listen_addresses=''",
                        "start"], check=True, capture_output=True)
        # A streaming replica of it, so that the primary's pg_stat_replication (and the exporter's series over
        # it, which the replication-lag rule reads) has a row, as it has on a db host with a standby.
        replica_port = free_port()
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "pg_basebackup"), "-D", str(base / "replica"),
                        "-h", str(base), "-p", str(pg_port), "-R", "-X", "stream", "--no-sync"],
                       check=True, capture_output=True)
        subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "pg_ctl"), "-D", str(base / "replica"),
                        "-w", "-l", str(base / "replica.log"), "-o",
                        f"-p {replica_port} -k {base} -c listen_addresses=''", "start"], check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "psql"), "-h", str(base), "-p",
                              str(pg_port), "-d", "postgres", "-Atc", "SELECT count(*) FROM pg_stat_replication"],
                             capture_output=True, text=True).stdout.strip() != "1":
            assert time.monotonic() < deadline, "the replica did not start streaming within 30 s"
            time.sleep(0.2)
        redis_port = free_port()
        processes.append(start("redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--maxmemory", "64mb"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(base / "tls.key"), "-out", str(base / "tls.crt")],
                       check=True, capture_output=True)
        tls_port = free_port()
        processes.append(start("openssl", "s_server", "-accept", str(tls_port), "-cert", str(base / "tls.crt"),
                               "-key", str(base / "tls.key"), "-www"))
        (base / "blackbox.yml").write_text(
            f"modules:\n  tls:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n"
            f"        ca_file: {base / 'tls.crt'}\n")
        ports = {name: free_port() for name in ("node", "postgres", "redis", "blackbox")}
        processes.append(start("prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{ports['node']}"))
        processes.append(start("prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{ports['postgres']}",
                               env={"DATA_SOURCE_NAME": f"host={base} port={pg_port} user=postgres "
                                                        "dbname=postgres sslmode=disable"}))
        processes.append(start("prometheus-redis-exporter", f"--web.listen-address=127.0.0.1:{ports['redis']}",
                               f"--redis.addr=redis://127.0.0.1:{redis_port}"))
        processes.append(start("prometheus-blackbox-exporter", f"--config.file={base / 'blackbox.yml'}",
                               f"--web.listen-address=127.0.0.1:{ports['blackbox']}"))
        names = scrape(ports["node"]) | scrape(ports["postgres"]) | scrape(ports["redis"])
        names |= scrape(ports["blackbox"], f"/probe?module=tls&target=127.0.0.1:{tls_port}")
        # Each exporter reached what it exports: a scrape of a dead service would list its "up" gauge only.
        assert {"pg_up", "redis_up", "probe_success"} <= names
        # The backup role's own metrics, which node exporter's textfile collector passes through as they are.
        yield names | app_samples() | PROMETHEUS_SERIES | set(BACKUP_METRICS)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        for cluster in ("replica", "pg"):
            subprocess.run(["runuser", "-u", "postgres", "--", str(pg_bin / "pg_ctl"), "-D", str(base / cluster),
                            "-m", "immediate", "stop"], capture_output=True)
