"""The backup metrics for node exporter's textfile collector, written FOR REAL: the backup role's metrics script
(rendered from templates/backup/backup-metrics.py.j2) runs as root, as the units' ExecStopPost does, against a
throwaway PostgreSQL whose WAL and backups go to a local encrypted pgBackRest repository (the role's own
single-topology pgbackrest.conf, paths pointed into a temp dir), and after the real restore drill.

What is asserted is what Prometheus will read: each .prom file parses (prometheus_client's parser and, when
installed, `promtool check metrics`), holds the values pgBackRest's own `info --output=json` gives, is 0644 and
replaced atomically, and a failure leaves the previous file alone. Skipped without root, the postgres account,
PostgreSQL or pgBackRest (apt-get install postgresql pgbackrest).
"""

from __future__ import annotations

import datetime
import grp
import json
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from local_postgres import (PGBACKREST, PGBACKREST_CLUSTERS_NEED, cannot_run_pgbackrest_clusters,
                            newest_postgresql_bin)
from redis_server import free_port
from roles.backup import manifest as backup_manifest
from roles.backup import metrics
from test_rendering_golden import _lab_inventory
from tsdeploy import ROOT
from tsdeploy import inventory as inventory_module
from tsdeploy.context import build_context
from tsdeploy.templating import render

PG_BIN = newest_postgresql_bin()
STANZA = "talentsphere"
ALERTS = ROOT / "templates" / "monitor" / "alerts.yml"

pytestmark = pytest.mark.skipif(cannot_run_pgbackrest_clusters(), reason=PGBACKREST_CLUSTERS_NEED)


class Lab:
    """A cluster archiving into its repository, and the role's scripts rendered for it, all under one temp dir.

    Its own port and lock directory: pytest-xdist may build a second one, or test_backup_drill's, at the same time.
    """

    def __init__(self, base: pathlib.Path, ctx: dict[str, Any]) -> None:
        self.base, self.pg, self.sock, self.port = base, base / "pg", base / "sock", free_port()
        self.textfiles = base / "textfiles"
        self.env = {"PGBACKREST_LOCK_PATH": str(base / "lock"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "LC_ALL": "C"}
        self.ctx = json.loads(json.dumps(ctx))
        self.ctx["backup"].update(
            repo_path=str(base / "repo"), log_path=str(base / "log"), spool_path=str(base / "spool"),
            pg_path=str(self.pg), pg_port=self.port, pg_socket_path=str(self.sock),
            conf_path=str(base / "pgbackrest.conf"), drill_base=str(base / "drill"),
            drill_result=str(base / "result" / "last.json"), drill_port=free_port(), pg_bin=str(PG_BIN),
            expected_indexes=["ix_jobs_title"], drill_recovery_timeout=120,
            metrics_file=str(self.textfiles / "talentsphere_backup.prom"),
            drill_metrics_file=str(self.textfiles / "talentsphere_backup_drill.prom"))
        self.backup_file = pathlib.Path(self.ctx["backup"]["metrics_file"])
        self.drill_file = pathlib.Path(self.ctx["backup"]["drill_metrics_file"])

    def as_postgres(self, *command: str | pathlib.Path, check: bool = True) -> subprocess.CompletedProcess:
        env = [f"{name}={value}" for name, value in self.env.items()]
        result = subprocess.run(["runuser", "-u", "postgres", "--", "env", "-i", *env, *map(str, command)],
                                capture_output=True, text=True, timeout=600)
        assert not check or result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
        return result

    def write(self, path: pathlib.Path, text: str, mode: int, owner: str = "postgres") -> pathlib.Path:
        path.write_text(text)
        shutil.chown(path, owner, owner)
        path.chmod(mode)
        return path

    def pgbackrest(self, *arguments: str, conf: str | None = None) -> subprocess.CompletedProcess:
        return self.as_postgres(PGBACKREST, f"--config={conf or self.ctx['backup']['conf_path']}",
                                f"--stanza={STANZA}", *arguments)

    def info(self) -> dict[str, Any]:
        return json.loads(self.pgbackrest("--output=json", "info").stdout)[0]

    def psql(self, sql: str, database: str = STANZA) -> None:
        self.as_postgres(PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p",
                         str(self.port), "-U", "postgres", "-d", database, "-c", sql)

    def metrics_script(self, ctx: dict[str, Any] | None = None) -> pathlib.Path:
        """The script as the deploy installs it (root 0755), rendered for `ctx` (the lab's by default)."""
        return self.write(self.base / "backup-metrics", render("backup/backup-metrics.py.j2", ctx or self.ctx),
                          0o755, owner="root")

    def write_metrics(self, what: str, ctx: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
        """Run it as root with systemd's bare environment, as `ExecStopPost=+... backup|drill` does."""
        return subprocess.run([str(self.metrics_script(ctx)), what], capture_output=True, text=True, timeout=600,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})

    def drill(self, **backup: Any) -> subprocess.CompletedProcess:
        ctx = json.loads(json.dumps(self.ctx))
        ctx["backup"].update(backup)
        script = self.write(self.base / "backup-drill", render("backup/backup-drill.sh.j2", ctx), 0o755)
        return self.as_postgres(script, check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    inventory = inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("single"), "single"))
    # Short, and reachable by postgres (pytest's tmp_path is root's 0700 tree; socket paths are limited to 107 bytes).
    base = pathlib.Path(tempfile.mkdtemp(prefix="tsd-metrics-", dir="/tmp"))
    lab = Lab(base, build_context(inventory, "ts1"))
    try:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o711)
        for name, mode in (("repo", 0o750), ("log", 0o750), ("spool", 0o750), ("lock", 0o750), ("sock", 0o700),
                           ("drill", 0o700), ("result", 0o750)):
            (base / name).mkdir(mode=mode)
            shutil.chown(base / name, "postgres", "postgres")
        # The textfile directory as Debian's package ships it: root's, which postgres cannot write.
        lab.textfiles.mkdir(mode=0o755)
        lab.write(base / "pgbackrest.conf", render("backup/pgbackrest.conf.j2", lab.ctx), 0o640)
        lab.as_postgres(PG_BIN / "initdb", "-D", lab.pg, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync", "--no-instructions")
        with (lab.pg / "postgresql.conf").open("a") as handle:
            handle.write(f"listen_addresses = ''\nport = {lab.port}\nunix_socket_directories = '{lab.sock}'\n"
                         "archive_mode = on\nwal_level = replica\n"
                         f"archive_command = '{PGBACKREST} --config={base}/pgbackrest.conf --stanza={STANZA} "
                         "archive-push %p'\n")
        lab.as_postgres(PG_BIN / "pg_ctl", "-D", lab.pg, "-l", base / "pg.log", "-w", "start")
        lab.psql(f"CREATE DATABASE {STANZA}", database="postgres")
        lab.psql("CREATE TABLE jobs (id serial PRIMARY KEY, title text NOT NULL);"
                 "INSERT INTO jobs (title) SELECT 'job ' || g FROM generate_series(1, 500) g;"
                 "CREATE INDEX ix_jobs_title ON jobs (title)")
        lab.pgbackrest("stanza-create")
        lab.pgbackrest("--type=full", "backup")
        lab.psql("INSERT INTO jobs (title) SELECT 'later job ' || g FROM generate_series(1, 50) g")
        lab.pgbackrest("--type=diff", "backup")
        yield lab
    finally:
        if (lab.pg / "postmaster.pid").exists():
            lab.as_postgres(PG_BIN / "pg_ctl", "-D", lab.pg, "-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def samples(path: pathlib.Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{metric name: {sorted label pairs: value}} of a textfile, read by Prometheus's own client parser (which
    raises on anything it cannot parse), after promtool's lint when it is installed."""
    text = path.read_text()
    if shutil.which("promtool"):
        linted = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def newest_per_type(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """pgBackRest's newest backup of each type in repository 1, read from its info as the verify suite does."""
    newest: dict[str, dict[str, Any]] = {}
    for item in info["backup"]:
        if not item.get("error") and (item["type"] not in newest
                                      or item["timestamp"]["stop"] > newest[item["type"]]["timestamp"]["stop"]):
            newest[item["type"]] = item
    return newest


def labels(kind: str) -> tuple[tuple[str, str], ...]:
    return (("repo", "1"), ("stanza", STANZA), ("type", kind))


def assert_written_like_debians_textfiles(path: pathlib.Path) -> None:
    status = path.stat()
    assert (status.st_mode & 0o777, pwd.getpwuid(status.st_uid).pw_name) == (0o644, "root")
    assert sorted(entry.name for entry in path.parent.iterdir() if not entry.name.endswith(".prom")) == [], \
        "a temp file was left in the textfile directory"


def test_after_a_backup_the_file_holds_the_stop_time_duration_and_size_of_the_newest_backup_of_each_type(lab) -> None:
    written = lab.write_metrics("backup")
    assert written.returncode == 0, written.stderr
    found, newest = samples(lab.backup_file), newest_per_type(lab.info())
    assert {"full", "diff"} <= set(newest)
    assert found[metrics.BACKUP_LAST_SUCCESS.name] == {labels(kind): item["timestamp"]["stop"]
                                                       for kind, item in newest.items()}
    assert found[metrics.BACKUP_LAST_DURATION.name] == {
        labels(kind): item["timestamp"]["stop"] - item["timestamp"]["start"] for kind, item in newest.items()}
    assert found[metrics.BACKUP_LAST_SIZE.name] == {labels(kind): item["info"]["repository"]["delta"]
                                                    for kind, item in newest.items()}
    # Values a human can check: the full ended just now, and a full backup of a tiny database takes seconds.
    full_stop = found[metrics.BACKUP_LAST_SUCCESS.name][labels("full")]
    assert 0 <= datetime.datetime.now().timestamp() - full_stop < 900
    assert 0 <= found[metrics.BACKUP_LAST_DURATION.name][labels("full")] < 300
    assert_written_like_debians_textfiles(lab.backup_file)


def test_a_backup_taken_by_hand_counts_at_the_next_run_of_the_writer(lab) -> None:
    lab.write_metrics("backup")
    before = samples(lab.backup_file)[metrics.BACKUP_LAST_SUCCESS.name]
    lab.pgbackrest("--type=incr", "backup")  # not through the unit: no ExecStopPost ran
    written = lab.write_metrics("backup")
    assert written.returncode == 0, written.stderr
    after = samples(lab.backup_file)[metrics.BACKUP_LAST_SUCCESS.name]
    assert after[labels("incr")] == newest_per_type(lab.info())["incr"]["timestamp"]["stop"]
    assert after[labels("full")] == before[labels("full")]


def test_when_pgbackrest_cannot_read_the_repository_the_previous_file_stays_and_the_writer_says_why(lab) -> None:
    assert lab.write_metrics("backup").returncode == 0
    previous = lab.backup_file.read_bytes()
    broken = json.loads(json.dumps(lab.ctx))
    broken["backup"]["conf_path"] = str(lab.base / "no-such.conf")
    written = lab.write_metrics("backup", broken)
    assert written.returncode != 0
    assert "pgbackrest info exited" in written.stderr and "keeps its previous values" in written.stderr
    assert lab.backup_file.read_bytes() == previous
    assert_written_like_debians_textfiles(lab.backup_file)


def test_a_failed_drill_reports_0_and_keeps_the_time_of_the_last_drill_that_passed(lab) -> None:
    assert lab.drill().returncode == 0
    assert lab.write_metrics("drill").returncode == 0
    passed = samples(lab.drill_file)
    stanza = (("stanza", STANZA),)
    last = json.loads(pathlib.Path(lab.ctx["backup"]["drill_result"]).read_text())
    finished = datetime.datetime.fromisoformat(last["finished_at"].replace("Z", "+00:00")).timestamp()
    assert passed[metrics.DRILL_LAST_RUN_SUCCESS.name] == {stanza: 1}
    assert passed[metrics.DRILL_LAST_SUCCESS.name] == passed[metrics.DRILL_LAST_RUN.name] == {stanza: finished}
    assert passed[metrics.DRILL_LAST_DURATION.name] == {stanza: last["seconds"]}
    assert passed[metrics.DRILL_LAST_RESTORE_DURATION.name] == {stanza: last["restore_seconds"]}

    # An index the app expects but the restored database lacks: the drill fails.
    assert lab.drill(expected_indexes=["ix_jobs_title", "ix_jobs_salary_sort"]).returncode == 1
    assert lab.write_metrics("drill").returncode == 0
    failed = samples(lab.drill_file)
    assert failed[metrics.DRILL_LAST_RUN_SUCCESS.name] == {stanza: 0}
    assert failed[metrics.DRILL_LAST_SUCCESS.name] == {stanza: finished}
    assert failed[metrics.DRILL_LAST_RUN.name][stanza] >= finished
    assert_written_like_debians_textfiles(lab.drill_file)


def test_each_file_declares_the_metrics_the_role_lists_and_nothing_else(lab) -> None:
    assert lab.write_metrics("backup").returncode == 0
    assert lab.write_metrics("drill").returncode == 0
    declared = {family.name for path in (lab.backup_file, lab.drill_file)
                for family in text_string_to_metric_families(path.read_text())}
    assert declared == set(metrics.METRICS)


# Declarations, no cluster needed -------------------------------------------------------------------------------------


def test_every_backup_metric_an_alert_reads_is_one_the_backup_role_writes() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    read = {word for rule in rules for word in rule["expr"].replace("(", " ").replace(")", " ").split()
            if word.startswith("talentsphere_backup_")}
    assert read and read <= set(metrics.METRICS)


def test_the_metric_names_follow_prometheus_conventions() -> None:
    for name in metrics.METRICS:
        assert name.startswith("talentsphere_backup_") and name == name.lower()
        assert name.endswith(("_timestamp_seconds", "_duration_seconds", "_bytes", "_success")), name


@pytest.mark.skipif(subprocess.run(["dpkg-query", "-W", "prometheus-node-exporter"], capture_output=True)
                    .returncode != 0, reason="needs Debian's prometheus-node-exporter installed")
def test_the_textfile_directory_is_declared_as_debians_node_exporter_installs_it() -> None:
    # The package owns the directory (dpkg -S) and ships it root:root 0755; the role creates it the same way when the
    # exporter is not there yet, so a later install and the drift check agree with it.
    owner = subprocess.run(["dpkg", "-S", metrics.TEXTFILE_DIR], capture_output=True, text=True)
    assert owner.stdout.startswith("prometheus-node-exporter:"), owner.stdout + owner.stderr
    status = os.stat(metrics.TEXTFILE_DIR)
    installed = (pwd.getpwuid(status.st_uid).pw_name, grp.getgrgid(status.st_gid).gr_name, f"{status.st_mode & 0o777:o}")
    declared = backup_manifest.TEXTFILE_DIR
    assert (declared.path, declared.user, declared.group, declared.mode) == (metrics.TEXTFILE_DIR, *installed)
