"""The restore drill script, run FOR REAL: PostgreSQL and pgBackRest on this machine, in a temp dir.

A throwaway cluster (Unix socket only) archives its WAL with the backup role's own single-topology
pgbackrest.conf (rendered from templates/backup/pgbackrest.conf.j2, paths pointed into the temp dir) into a
local encrypted repository; a full backup is taken, then more rows are written and archived. The rendered
drill script (templates/backup/backup-drill.sh.j2, paths and ports from the same context) then restores the
newest backup into its scratch cluster, replays the WAL, checks it and writes last.json. Then the same runs
with a corrupted repository file, with an index the app expects but the database lacks, and with the split
topology's configuration (its pg1-host unreachable: the drill never contacts the db host).

Everything runs as postgres, as pgbackrest-drill.service does. Skipped without root, the postgres account or
the binaries (apt-get install postgresql pgbackrest).
"""

from __future__ import annotations

import json
import pathlib
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from roles.backup import stanza as backup_stanza
from test_rendering_golden import _lab_inventory
from tsdeploy import inventory as inventory_module
from tsdeploy.context import build_context
from tsdeploy.templating import render
from local_postgres import (PGBACKREST, PGBACKREST_CLUSTERS_NEED, cannot_run_pgbackrest_clusters,
                            newest_postgresql_bin)


#: The drill runs the cluster's own major version, whichever is installed.
PG_BIN = newest_postgresql_bin()
STANZA = "talentsphere"
SOURCE_PORT = 5481
DRILL_PORT = 5499
INDEXES = ["ix_jobs_title", "ix_jobs_posted", "ix_users_email"]
ROWS_AT_BACKUP = {"jobs": 1000, "users": 50, "saved_jobs": 0}
ROWS_AFTER_BACKUP = {"jobs": 1007, "users": 50, "saved_jobs": 0}


pytestmark = pytest.mark.skipif(cannot_run_pgbackrest_clusters(), reason=PGBACKREST_CLUSTERS_NEED)


class Lab:
    """A cluster, its repository and the paths the role's templates are rendered with, all under one temp dir."""

    def __init__(self, base: pathlib.Path, contexts: dict[str, dict[str, Any]]) -> None:
        self.base = base
        self.contexts = contexts
        self.pg = base / "pg"
        self.sock = base / "sock"
        # pgBackRest's lock path is not in the configuration (its default, /tmp/pgbackrest, is the host's).
        self.env = {"PGBACKREST_LOCK_PATH": str(base / "lock"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "LC_ALL": "C"}

    def run(self, *command: str | pathlib.Path, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
        """`command` as postgres, with the lab's environment."""
        env = [f"{name}={value}" for name, value in self.env.items()]
        result = subprocess.run(["runuser", "-u", "postgres", "--", "env", "-i", *env, *map(str, command)],
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def write(self, path: pathlib.Path, text: str, mode: int = 0o640) -> pathlib.Path:
        path.write_text(text)
        shutil.chown(path, "postgres", "postgres")
        path.chmod(mode)
        return path

    def context(self, topology: str, **backup: Any) -> dict[str, Any]:
        """The topology's backup host context, its paths pointed into the lab."""
        ctx = json.loads(json.dumps(self.contexts[topology]))
        ctx["backup"].update(
            repo_path=str(self.base / "repo"), log_path=str(self.base / "log"), spool_path=str(self.base / "spool"),
            pg_path=str(self.pg), pg_port=SOURCE_PORT, pg_socket_path=str(self.sock), db_address="127.0.0.1",
            conf_path=str(self.base / "pgbackrest.conf"), drill_base=str(self.base / "drill"),
            drill_result=str(self.base / "result" / "last.json"), drill_port=DRILL_PORT, pg_bin=str(PG_BIN),
            expected_indexes=INDEXES, drill_recovery_timeout=120)
        ctx["backup"].update(backup)
        return ctx

    def conf(self, name: str, ctx: dict[str, Any]) -> pathlib.Path:
        return self.write(self.base / name, render("backup/pgbackrest.conf.j2", ctx))

    def drill(self, ctx: dict[str, Any]) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
        """Render the drill script for `ctx`, run it as postgres; its output and the last.json it wrote."""
        script = self.write(self.base / "backup-drill", render("backup/backup-drill.sh.j2", ctx), 0o755)
        result_file = pathlib.Path(ctx["backup"]["drill_result"])
        result_file.unlink(missing_ok=True)
        result = self.run(script, check=False, timeout=600)
        assert result_file.is_file(), f"no {result_file}:\n{result.stdout}\n{result.stderr}"
        return result, json.loads(result_file.read_text())

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self.run(PG_BIN / "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p",
                        str(SOURCE_PORT), "-U", "postgres", "-d", database, "-c", sql).stdout.strip()

    def pgbackrest(self, conf: pathlib.Path, *arguments: str) -> subprocess.CompletedProcess:
        return self.run(PGBACKREST, f"--config={conf}", f"--stanza={STANZA}", *arguments)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    contexts = {topology: build_context(inventory_module.load(_lab_inventory(tmp_path_factory.mktemp(topology),
                                                                             topology)), host)
                for topology, host in (("single", "ts1"), ("split", "backup1"))}
    # Short, and reachable by postgres (pytest's tmp_path is root's 0700 tree; socket paths are limited to 107 bytes).
    base = pathlib.Path(tempfile.mkdtemp(prefix="tsd-drill-", dir="/tmp"))
    lab = Lab(base, contexts)
    try:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
        for name, mode in (("repo", 0o750), ("log", 0o750), ("spool", 0o750), ("lock", 0o750), ("sock", 0o700),
                           ("drill", 0o700), ("result", 0o750)):
            (base / name).mkdir(mode=mode)
            shutil.chown(base / name, "postgres", "postgres")
        conf = lab.conf("pgbackrest.conf", lab.context("single"))
        lab.run(PG_BIN / "initdb", "-D", lab.pg, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync", "--no-instructions")
        with (lab.pg / "postgresql.conf").open("a") as handle:
            # What the postgres role's drop-in sets with a backup host (archive_command reads the lab's conf).
            handle.write(f"listen_addresses = ''\nport = {SOURCE_PORT}\nunix_socket_directories = '{lab.sock}'\n"
                         f"archive_mode = on\nwal_level = replica\narchive_timeout = 60\n"
                         f"archive_command = '{PGBACKREST} --config={conf} --stanza={STANZA} archive-push %p'\n")
        lab.run(PG_BIN / "pg_ctl", "-D", lab.pg, "-l", base / "pg.log", "-w", "start")
        lab.psql(f"CREATE DATABASE {STANZA}")
        lab.psql("CREATE TABLE jobs (id serial PRIMARY KEY, title text NOT NULL, posted_at timestamptz DEFAULT now());"
                 "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);"
                 "CREATE TABLE saved_jobs (user_id int, job_id int);"
                 "INSERT INTO jobs (title) SELECT 'job ' || g FROM generate_series(1, 1000) g;"
                 "INSERT INTO users (email) SELECT 'u' || g || '@example.test' FROM generate_series(1, 50) g;"
                 "CREATE INDEX ix_jobs_title ON jobs (title); CREATE INDEX ix_jobs_posted ON jobs (posted_at);"
                 "CREATE INDEX ix_users_email ON users (email)", database=STANZA)
        lab.pgbackrest(conf, "stanza-create")
        lab.pgbackrest(conf, "check")
        lab.pgbackrest(conf, "--type=full", "backup")
        # Written after the backup: only WAL replay brings them back.
        lab.psql("INSERT INTO jobs (title) SELECT 'late job ' || g FROM generate_series(1, 7) g", database=STANZA)
        lab.pgbackrest(conf, "check")  # switches the WAL segment and waits until the repository has it
        yield lab
    finally:
        if (lab.pg / "postmaster.pid").exists():
            lab.run(PG_BIN / "pg_ctl", "-D", lab.pg, "-m", "immediate", "stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


def _scratch_is_gone(ctx: dict[str, Any]) -> bool:
    base = pathlib.Path(ctx["backup"]["drill_base"])
    return not (base / "pgdata").exists() and not list(base.glob(".s.PGSQL.*"))


def test_the_drill_restores_the_newest_backup_replays_the_wal_and_counts_every_row(lab) -> None:
    ctx = lab.context("single")
    result, last = lab.drill(ctx)
    assert result.returncode == 0, result.stdout + result.stderr
    assert last["passed"] is True and last["error"] is None
    assert last["rows"] == ROWS_AFTER_BACKUP != ROWS_AT_BACKUP
    assert last["tables"] == 3
    assert (last["indexes_expected"], last["indexes_valid"], last["invalid_indexes"], last["missing_indexes"]) \
        == (3, 3, [], [])
    assert (last["amcheck"], last["verify"]) == ("ok", "ok")
    assert last["backup_label"].endswith("F") and last["recovery_point"].endswith("Z")
    assert 0 < last["restore_seconds"] <= last["seconds"]
    assert set(last) >= {"passed", "started_at", "finished_at", "seconds", "backup_label", "recovery_point",
                         "restore_seconds", "tables", "rows", "indexes_expected", "indexes_valid", "invalid_indexes",
                         "missing_indexes", "amcheck", "verify", "error"}
    assert "drill: PASSED: backup " in result.stdout
    result_file = pathlib.Path(ctx["backup"]["drill_result"])
    assert (result_file.stat().st_mode & 0o777, pwd.getpwuid(result_file.stat().st_uid).pw_name) == (0o640, "postgres")
    assert _scratch_is_gone(ctx)


def test_the_drill_leaves_the_archive_queue_of_a_live_cluster_on_its_host_alone(lab) -> None:
    # pgBackRest's restore empties the spool's queues of the stanza. The lab cluster archives asynchronously
    # through this spool, as a db host that is its own backup host does; the status file its archive-push waits
    # for must survive a drill, and the next WAL segment must still reach the repository at once.
    ctx = lab.context("single")
    queue = lab.base / "spool" / "archive" / STANZA / "out"
    marker = queue / "0000000100000000000000FF.ok"
    queue.mkdir(parents=True, exist_ok=True)
    marker.touch()
    shutil.chown(marker, "postgres", "postgres")
    try:
        result, last = lab.drill(ctx)
        assert result.returncode == 0 and last["passed"], result.stdout + result.stderr
        assert marker.exists()
        assert not (pathlib.Path(ctx["backup"]["drill_base"]) / "spool").exists()
    finally:
        marker.unlink(missing_ok=True)
    failed = lab.psql("SELECT failed_count FROM pg_stat_archiver")
    lab.pgbackrest(lab.base / "pgbackrest.conf", "check")  # a new segment, archived through the same queue
    assert lab.psql("SELECT failed_count FROM pg_stat_archiver") == failed


def test_the_drill_never_contacts_the_db_host_with_the_repository_hosts_configuration(lab) -> None:
    # backup1's file names pg1-host (here an address nothing listens on) and a TLS server whose files do not exist.
    ctx = lab.context("split", db_address="127.0.0.1", tls_dir=str(lab.base / "no-tls"))
    ctx["backup"]["conf_path"] = str(lab.conf("split.conf", ctx))
    result, last = lab.drill(ctx)
    assert result.returncode == 0, result.stdout + result.stderr
    assert last["passed"] and last["rows"] == ROWS_AFTER_BACKUP
    assert _scratch_is_gone(ctx)


def test_an_index_the_app_expects_but_the_restore_lacks_fails_and_the_running_scratch_cluster_is_removed(lab) -> None:
    ctx = lab.context("single", expected_indexes=[*INDEXES, "ix_jobs_salary_sort"])
    result, last = lab.drill(ctx)
    assert result.returncode == 1
    assert last["passed"] is False and last["missing_indexes"] == ["ix_jobs_salary_sort"]
    assert last["indexes_valid"] == 3 and last["rows"] == ROWS_AFTER_BACKUP
    assert "lacks 1 of the app's indexes: ix_jobs_salary_sort" in last["error"]
    assert "drill: FAILED: " in result.stdout
    assert _scratch_is_gone(ctx)
    # The scratch cluster was stopped, not only its directory removed.
    assert not lab.run("pgrep", "-u", "postgres", "-f", str(pathlib.Path(ctx["backup"]["drill_base"]) / "pgdata"),
                       check=False).stdout.strip()


def test_a_corrupted_repository_file_fails_the_drill_loudly_and_still_removes_the_scratch_cluster(lab) -> None:
    corrupt = lab.base / "repo-corrupt"
    shutil.copytree(lab.base / "repo", corrupt, symlinks=True)
    subprocess.run(["chown", "-R", "postgres:postgres", str(corrupt)], check=True)
    bundle = sorted((corrupt / "backup" / STANZA).glob("*F/bundle/*"))[0]
    with bundle.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"not what was backed up")
    ctx = lab.context("single", repo_path=str(corrupt))
    ctx["backup"]["conf_path"] = str(lab.conf("corrupt.conf", ctx))
    result, last = lab.drill(ctx)
    assert result.returncode == 1
    assert last["passed"] is False
    assert last["error"].startswith("pgbackrest verify found damaged files in repository 1: backup: "), last["error"]
    # The bytes written may span two of the bundle's files.
    assert re.search(r"checksum invalid: [1-9]", last["error"]) and "take a new full backup" in last["error"], \
        last["error"]
    assert last["verify"] == last["error"]
    assert "drill: FAILED: pgbackrest verify found damaged files" in result.stdout
    assert "drill: FAILED: pgbackrest restore of backup " in result.stdout  # the restore reads the bad file too
    assert last["rows"] == {} and last["restore_seconds"] is None
    assert _scratch_is_gone(ctx)


def test_a_repository_without_a_backup_fails_with_what_to_do(lab) -> None:
    empty = lab.base / "repo-empty"
    empty.mkdir(mode=0o750)
    shutil.chown(empty, "postgres", "postgres")
    ctx = lab.context("single", repo_path=str(empty))
    ctx["backup"]["conf_path"] = str(lab.conf("empty.conf", ctx))
    # Its own lock dir: the lab cluster's asynchronous archive-push may hold the stanza's archive lock meanwhile
    # (for the other repository).
    own_lock = lab.base / "lock-empty"
    own_lock.mkdir(mode=0o750)
    shutil.chown(own_lock, "postgres", "postgres")
    lab.pgbackrest(pathlib.Path(ctx["backup"]["conf_path"]), f"--lock-path={own_lock}", "stanza-create")
    result, last = lab.drill(ctx)
    assert result.returncode == 1 and last["passed"] is False and last["backup_label"] is None
    assert "holds no backup of stanza talentsphere yet" in last["error"] and "tsdeploy backup" in last["error"]
    assert _scratch_is_gone(ctx)


# The deploy's facts, their shell commands run for real -----------------------------------------------------------


def _fact(lab: Lab, fact: Any, conf: pathlib.Path, **arguments: str) -> Any:
    """Run a fact's command as the deploy does (root, the command itself switches to postgres) and process it.

    PGBACKREST_CONFIG points pgBackRest at the lab's file instead of /etc/pgbackrest/pgbackrest.conf.
    """
    env = {**lab.env, "PGBACKREST_CONFIG": str(conf)}
    result = subprocess.run(["sh", "-c", fact.command(**arguments)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr  # a fact's command must succeed whatever pgBackRest says
    return fact.process(result.stdout.splitlines())


def test_the_stanza_and_check_facts_read_pgbackrests_answers(lab) -> None:
    conf = lab.base / "pgbackrest.conf"
    info = _fact(lab, backup_stanza.StanzaInfo(), conf, stanza=STANZA)
    assert (info["ok"], info["missing"], info["running"], info["error"]) == (True, [], False, "")
    assert info["backups"] == 1
    assert _fact(lab, backup_stanza.StanzaInfo(), conf, stanza="other")["missing"] == [1]
    check = _fact(lab, backup_stanza.ArchiveCheck(), conf, stanza=STANZA)
    assert check["passed"], check["message"]


def test_the_deploys_stanza_create_makes_a_missing_stanza_and_then_nothing_is_missing(lab) -> None:
    repo = lab.base / "repo-new"
    repo.mkdir(mode=0o750)
    shutil.chown(repo, "postgres", "postgres")
    conf = lab.conf("new.conf", lab.context("single", repo_path=str(repo)))
    assert _fact(lab, backup_stanza.StanzaInfo(), conf, stanza=STANZA)["missing"] == [1]
    env = {**lab.env, "PGBACKREST_CONFIG": str(conf)}
    created = subprocess.run(["sh", "-c", backup_stanza._stanza_create(STANZA)], capture_output=True, text=True,
                             env=env, timeout=120)
    assert created.returncode == 0, created.stderr
    assert _fact(lab, backup_stanza.StanzaInfo(), conf, stanza=STANZA)["missing"] == []
    wrong = subprocess.run(["sh", "-c", backup_stanza._stanza_create("unknown")], capture_output=True, text=True,
                           env=env, timeout=120)
    assert wrong.returncode == 1 and "ERROR: [" in wrong.stderr  # pgBackRest's words, at once (no retries)


def test_the_check_fact_sees_archive_mode_waiting_for_a_restart(lab) -> None:
    conf = lab.base / "pgbackrest.conf"
    restart = (PG_BIN / "pg_ctl", "-D", lab.pg, "-l", lab.base / "pg.log", "-w", "restart")
    lab.run(*restart, "-o", "-c archive_mode=off")
    try:
        check = _fact(lab, backup_stanza.ArchiveCheck(), conf, stanza=STANZA)
        assert (check["passed"], check["code"]) == (False, backup_stanza.ARCHIVE_DISABLED), check["message"]
        assert "archive_mode must be enabled" in check["message"]
    finally:
        lab.run(*restart, "-o", "-c archive_mode=on")  # without -o, pg_ctl restart reuses the last options
