"""`tsdeploy backup | backups | restore | drill`: what they parse, refuse, plan and print, and the restore's steps.

The formatting, parsing and planning are pure functions, fed pgBackRest's real `info --output=json` shape
(recorded from pgBackRest 2.45) and the drill's result file. The restore's shell steps (roles/backup/
restore.py) run FOR REAL at the end against this machine's PostgreSQL 15 and pgBackRest, on a throwaway
cluster and repository in /tmp (loopback only, Unix socket), with a stand-in `systemctl` that drives the
cluster with pg_ctl; skipped without root, the postgres account or the binaries. The commands themselves
reach hosts over SSH and are proved on the lab (tests/e2e/test_backup.py).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from click.testing import CliRunner

from roles.backup import facts, restore
from tsdeploy import backup_cli
from tsdeploy.backup_cli import Refused
from local_postgres import has_postgres_account

UTC = datetime.timezone.utc
FULL_STOP = 1796094160  # 2026-12-01 03:02:40 UTC

#: One stanza of `pgbackrest --stanza=ts --output=json info` (pgBackRest 2.45), plus a diff added below.
INFO = json.loads(
    '[{"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1", "max": "000000010000000000000003", '
    '"min": "000000010000000000000001"}], "backup": [{"archive": {"start": "000000010000000000000003", '
    '"stop": "000000010000000000000003"}, "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, '
    '"repo-key": 1}, "error": false, "info": {"delta": 23090903, "repository": {"delta": 2838192, "size": 2838192}, '
    '"size": 23090903}, "label": "20261201-030238F", "lsn": {"start": "0/3000028", "stop": "0/3000100"}, '
    '"prior": null, "reference": null, "timestamp": {"start": 1796094158, "stop": 1796094160}, "type": "full"}], '
    '"cipher": "aes-256-cbc", "db": [{"id": 1, "repo-key": 1, "system-id": 7714165658333305814, "version": "15"}], '
    '"name": "ts", "repo": [{"cipher": "aes-256-cbc", "key": 1, "status": {"code": 0, "message": "ok"}}], '
    '"status": {"code": 0, "lock": {"backup": {"held": false}}, "message": "ok"}}]')


def stanza_with_diff() -> dict:
    stanza = copy.deepcopy(INFO[0])
    diff = copy.deepcopy(stanza["backup"][0])
    diff.update(label="20261202-013000F_20261202-013005D", type="diff", prior="20261201-030238F",
                timestamp={"start": FULL_STOP + 86400, "stop": FULL_STOP + 86405},
                archive={"start": "000000010000000000000007", "stop": "000000010000000000000007"})
    diff["info"] = {"size": 23090903, "delta": 8192, "repository": {"size": 2838192, "delta": 1024}}
    stanza["backup"].append(diff)
    return stanza


# --- facts: what the host printed -------------------------------------------------------------------------------------


def test_info_fact_reads_pgbackrests_json_and_keeps_its_warnings() -> None:
    output = ["WARN: option 'repo1-retention-full' is not set", json.dumps(INFO), "rc=0"]
    parsed = facts.parse_info(output)
    assert parsed["error"] is None and parsed["stanzas"][0]["name"] == "ts"
    assert parsed["messages"] == ["WARN: option 'repo1-retention-full' is not set"]


def test_info_fact_turns_a_failure_into_its_message() -> None:
    parsed = facts.parse_info(["ERROR: [037]: unable to find primary cluster - cannot proceed", "rc=37"])
    assert parsed == {"stanzas": None, "messages": [], "error": "pgbackrest info exited 37: ERROR: [037]: unable to "
                                                                "find primary cluster - cannot proceed"}


def test_drill_fact_reads_the_file_the_hosts_clock_and_a_missing_file() -> None:
    assert facts.parse_json_file(["now=1796094160", '{"passed": false,', ' "error": "x"}', "rc=0"]) == {
        "now": 1796094160, "data": {"passed": False, "error": "x"}, "error": None}
    assert facts.parse_json_file(["now=5", "missing", "rc=0"]) == {"now": 5, "data": None, "error": None}
    assert facts.parse_json_file(["now=5", "sudo: a password is required", "rc=1"])["error"] == (
        "sudo: a password is required")


def test_restore_results_fact_keeps_one_entry_per_step_file() -> None:
    output = ["== check.json", '{"run": "r1", "ok": true}', "", "== recovery.json", '{"run": "r1",',
              ' "recovery_point": "2026-12-01T03:05:55.250672Z"}']
    assert facts.parse_results(output) == {"check": {"run": "r1", "ok": True},
                                           "recovery": {"run": "r1", "recovery_point": "2026-12-01T03:05:55.250672Z"}}


# --- backups: the table -----------------------------------------------------------------------------------------------


def test_backups_report_lists_each_backup_with_sizes_times_and_wal() -> None:
    lines = backup_cli.backups_report(stanza_with_diff())
    assert lines[0] == "stanza ts: ok (code 0), cipher aes-256-cbc"
    assert lines[1].split() == ["repo", "label", "type", "start", "stop", "size", "repo", "size", "WAL"]
    assert lines[2].split() == ["1", "20261201-030238F", "full", "2026-12-01", "03:02:38", "UTC", "2026-12-01",
                                "03:02:40", "UTC", "22.0", "MiB", "2.7", "MiB",
                                "000000010000000000000003..000000010000000000000003"]
    assert lines[3].split()[1:3] == ["20261202-013000F_20261202-013005D", "diff"]
    assert lines[-1] == "WAL archive 15-1 (repo 1): 000000010000000000000001 .. 000000010000000000000003"
    # The columns line up: every row starts its label at the same offset.
    assert len({line.index("2026120") for line in lines[2:4]}) == 1


def test_backups_report_of_an_empty_repository_says_how_to_take_the_first_backup() -> None:
    stanza = copy.deepcopy(INFO[0]) | {"backup": [], "status": {"code": 2, "message": "no valid backups"}}
    lines = backup_cli.backups_report(stanza)
    assert lines[0].startswith("stanza ts: no valid backups (code 2)")
    assert "tsdeploy backup INVENTORY --type full" in lines[1]


def test_status_line_names_a_running_backup_and_a_failing_repository() -> None:
    stanza = copy.deepcopy(INFO[0])
    stanza["status"]["lock"]["backup"]["held"] = True
    stanza["repo"].append({"key": 2, "cipher": "aes-256-cbc", "status": {"code": 99, "message": "other"}})
    assert backup_cli.status_line(stanza).endswith("a backup is running now; repo2: other")


def test_the_backups_a_manual_run_took_are_the_new_labels() -> None:
    stanza = stanza_with_diff()
    assert [item["type"] for item in backup_cli.new_backups({"20261201-030238F"}, stanza)] == ["diff"]
    assert backup_cli.new_backups({item["label"] for item in stanza["backup"]}, stanza) == []
    line = backup_cli.backup_line(stanza["backup"][1], "ts", "backup1")
    assert line == ("backup 20261202-013000F_20261202-013005D (diff) of stanza ts in repository 1 on backup1: "
                    "22.0 MiB (repository 2.7 MiB), 5.0 s, ended 2026-12-02 03:02:45 UTC, "
                    "WAL 000000010000000000000007..000000010000000000000007")


def test_an_unknown_stanza_is_refused_with_the_fix() -> None:
    with pytest.raises(Refused, match="no stanza 'other'.*stanza-create"):
        backup_cli.stanza_of(INFO, "other")


# --- restore: the target ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2026-12-01T10:00:00+01:00", "2026-12-01T09:00:00+00:00"),
    ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00+00:00"),
    ("2026-12-01 09:00:00.250+00:00", "2026-12-01T09:00:00.250000+00:00"),
    ("2026-12-01 10:00:00 Europe/Berlin", "2026-12-01T09:00:00+00:00"),
    ("2026-07-01 10:00:00 Europe/Berlin", "2026-07-01T08:00:00+00:00"),
    ("2026-12-01 09:00:00 UTC", "2026-12-01T09:00:00+00:00"),
])
def test_a_time_with_a_zone_is_read_as_utc(text: str, expected: str) -> None:
    assert backup_cli.parse_time(text).isoformat() == expected


@pytest.mark.parametrize("text, message", [
    ("2026-12-01 10:00:00", "names no time zone"),
    ("2026-12-01T10:00:00", "names no time zone"),
    ("2026-12-01", "names no time zone"),
    ("yesterday", "names no time zone"),
    ("1764579600", "names no time zone"),
    ("2026-02-30T10:00:00Z", "is not a valid time"),
    ("2026-12-01 10:00:00 Mars/Olympus", "'Mars/Olympus' in .* is not a time zone name"),
    ("2026-03-29 02:30:00 Europe/Berlin", "does not exist in Europe/Berlin"),
    ("2026-10-25 02:30:00 Europe/Berlin", "happened twice in Europe/Berlin"),
])
def test_an_ambiguous_or_zoneless_time_is_refused_with_the_accepted_forms(text: str, message: str) -> None:
    with pytest.raises(Refused, match=message):
        backup_cli.parse_time(text)


def test_a_zoneless_time_is_refused_by_the_command_before_any_host_is_asked(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(backup_cli.restore, [str(tmp_path), "--to", "2026-12-01 10:00:00"])
    assert result.exit_code == 2
    assert "Invalid value for --to" in result.output and "Europe/Berlin" in result.output


@pytest.mark.parametrize("args", [[], ["--to", "2026-12-01T10:00:00Z", "--latest"]])
def test_restore_needs_exactly_one_target(tmp_path: pathlib.Path, args: list[str]) -> None:
    result = CliRunner().invoke(backup_cli.restore, [str(tmp_path), *args])
    assert result.exit_code == 2 and "exactly one of --to TIME and --latest" in result.output


def test_a_target_in_the_future_is_refused() -> None:
    now = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    with pytest.raises(Refused, match="2026-12-03 12:00:01 UTC is in the future .*use --latest"):
        backup_cli.check_target(now + datetime.timedelta(seconds=1), now, stanza_with_diff())


def test_a_target_before_the_oldest_backup_ended_is_refused_naming_the_earliest_time() -> None:
    now = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    with pytest.raises(Refused, match="before the end of the oldest backup, 20261201-030238F "
                                      r"\(2026-12-01 03:02:40 UTC\).*after 2026-12-01 03:02:40 UTC"):
        backup_cli.check_target(datetime.datetime(2026, 12, 1, 3, 2, 39, tzinfo=UTC), now, stanza_with_diff())


def test_a_restore_starts_from_the_newest_backup_that_ended_before_the_target() -> None:
    now = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    stanza = stanza_with_diff()
    assert backup_cli.check_target(datetime.datetime(2026, 12, 1, 3, 2, 40, tzinfo=UTC), now, stanza)["type"] == "full"
    assert backup_cli.check_target(datetime.datetime(2026, 12, 2, 12, 0, tzinfo=UTC), now, stanza)["type"] == "diff"
    assert backup_cli.base_backup(stanza, None)["type"] == "diff"


def test_an_empty_repository_refuses_any_restore() -> None:
    empty = copy.deepcopy(INFO[0]) | {"backup": []}
    with pytest.raises(Refused, match="no backup of stanza ts: take one first"):
        backup_cli.base_backup(empty, None)


def test_the_target_reaches_postgresql_in_utc_with_an_explicit_offset() -> None:
    assert backup_cli.pg_target(backup_cli.parse_time("2026-12-01 10:00:00 Europe/Berlin")) == (
        "2026-12-01 09:00:00.000000+00:00")


# --- restore: the plan ------------------------------------------------------------------------------------------------


def plan(target: datetime.datetime | None, app_hosts: tuple[str, ...] = ("app1", "app2")) -> list[str]:
    stanza = stanza_with_diff()
    base = backup_cli.base_backup(stanza, target)
    return backup_cli.plan_lines(inventory="inventories/lab", db_host="db1", pg_service="postgresql@15-main",
                                 app_hosts=list(app_hosts), target=target,
                                 now=datetime.datetime(2026, 12, 2, 14, 13, tzinfo=UTC), base=base, stanza="ts",
                                 archive_timeout=60)


def test_the_plan_says_what_stops_what_is_restored_and_how_much_is_lost() -> None:
    lines = plan(datetime.datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    text = "\n".join(lines)
    assert lines[0] == "Restore plan for inventories/lab (stanza ts); nothing has been changed yet:"
    assert lines[1].startswith("  1. db1: pgbackrest check")
    assert lines[2].startswith("  2. stop the app tier on app1, app2 (talentsphere.service")
    assert "in place to 2026-12-02 12:00:00 UTC from backup 20261202-013000F_20261202-013005D (diff" in lines[3]
    assert lines[4].startswith("  4. app1: run the live release's migrations if the restored schema is behind")
    assert lines[5].startswith("  5. start the app tier on app1, app2")
    assert ("Lost: every write after 2026-12-02 12:00:00 UTC, on every table: the last 2 h 13 min of writes so far, "
            "and those until the app stops.") in text
    assert lines[-1].startswith("The app is down")


def test_the_latest_plan_archives_after_the_app_stops_and_bounds_the_loss_by_archive_timeout() -> None:
    lines = plan(None)
    assert lines[1].startswith("  1. stop the app tier")
    assert lines[2].startswith("  2. db1: pgbackrest check, so that every write up to the app's stop is archived")
    assert "to the newest archived WAL from backup 20261202-013000F_20261202-013005D" in lines[3]
    assert "at most about backup_archive_timeout = 60 s of writes" in "\n".join(lines)


def test_a_plan_without_app_hosts_only_restores_the_database() -> None:
    lines = plan(None, app_hosts=())
    assert not any("migrations" in line or "start the app" in line for line in lines)


def test_restore_report_reads_only_this_runs_results() -> None:
    base = stanza_with_diff()["backup"][0]
    results = {"check": {"run": "old", "ok": False, "message": "stale"},
               "restore": {"run": "r1", "backup_set": "20261201-030238F", "seconds": 0.27},
               "recovery": {"run": "r1", "recovery_point": "2026-12-01T03:05:55.250672Z", "timeline": "2",
                            "seconds": 1.3},
               "schema": {"run": "r1", "before": "a1", "head": "b2", "migrated": True}}
    lines = backup_cli.restore_report(results, "r1", base, 42.0)
    assert lines == ["recovery point: 2026-12-01T03:05:55.250672Z (the last transaction replayed)",
                     "backup set: 20261201-030238F; restore 0.3 s, WAL replay and promotion 1.3 s, timeline 2",
                     "schema: a1 -> b2 (migrated)",
                     "wall time: 42.0 s (the app was down for most of it)"]


def test_restore_report_without_a_replayed_transaction_names_the_backups_end_and_the_check_warning() -> None:
    base = stanza_with_diff()["backup"][0]
    results = {"check": {"run": "r1", "ok": False, "message": "system-id 7 does not match stanza"},
               "recovery": {"run": "r1", "recovery_point": "", "timeline": "2", "seconds": 1},
               "schema": {"run": "r1", "before": "b2", "head": "b2", "migrated": False}}
    lines = backup_cli.restore_report(results, "r1", base, 10)
    assert lines[0] == ("recovery point: the end of backup 20261201-030238F (2026-12-01 03:02:40 UTC): no archived "
                        "transaction after it was replayed")
    assert "warning: pgbackrest check before the restore: system-id 7 does not match stanza" in lines
    assert "schema: at the live release's head (b2), no migration needed" in lines


# --- drill ------------------------------------------------------------------------------------------------------------


DRILL = {"passed": True, "started_at": "2026-12-05T04:00:00Z", "finished_at": "2026-12-05T04:00:12Z", "seconds": 12.3,
         "backup_label": "20261205-013000F", "recovery_point": "2026-12-05T03:59:58Z", "restore_seconds": 1.1,
         "tables": 2, "rows": {"jobs": 100000, "companies": 50}, "indexes_expected": 38, "indexes_valid": 38,
         "invalid_indexes": [], "missing_indexes": [], "amcheck": "ok", "verify": "ok", "error": None}


def test_drill_lines_show_the_verdict_backup_times_rows_and_indexes() -> None:
    lines = backup_cli.drill_lines(DRILL)
    assert lines[0] == "drill passed: backup 20261205-013000F, recovery point 2026-12-05T03:59:58Z"
    assert lines[1] == "restore 1.1 s (restore start to promoted), total 12.3 s; finished 2026-12-05T04:00:12Z"
    assert lines[2:5] == ["tables: 2, rows: 100,050 in all", "  companies: 50", "  jobs: 100,000"]
    assert "indexes: 38 of 38 valid" in lines and "amcheck: ok; pgbackrest verify: ok" in lines


def test_a_failed_drill_leads_with_its_error_and_names_the_bad_indexes() -> None:
    failed = DRILL | {"passed": False, "error": "pgbackrest verify: invalid checksum", "indexes_valid": 37,
                      "invalid_indexes": ["ix_jobs_title"], "verify": "invalid checksum in bundle/1"}
    lines = backup_cli.drill_lines(failed)
    assert lines[0].startswith("drill FAILED") and lines[1] == "error: pgbackrest verify: invalid checksum"
    assert "  invalid: ix_jobs_title" in lines


def test_only_a_drill_result_written_after_the_command_started_counts() -> None:
    started = datetime.datetime.fromisoformat("2026-12-05T04:00:00+00:00").timestamp()
    assert backup_cli.drill_is_fresh(DRILL, host_now=started + 30, elapsed=30)
    assert not backup_cli.drill_is_fresh(DRILL, host_now=started + 3600, elapsed=30)
    assert not backup_cli.drill_is_fresh(DRILL | {"started_at": None}, host_now=started, elapsed=30)


@pytest.mark.parametrize("seconds, text", [(0.4, "0.4 s"), (59.94, "59.9 s"), (60, "1 min 0 s"),
                                            (3600, "1 h 0 min"), (90000, "1 d 1 h")])
def test_durations_read_like_an_operator_says_them(seconds: float, text: str) -> None:
    assert backup_cli.format_duration(seconds) == text


# --- the restore's steps, for real against a throwaway cluster and repository -----------------------------------------

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


needs_pgbackrest = pytest.mark.skipif(
    os.geteuid() != 0 or not has_postgres_account() or not (PG_BIN / "pg_ctl").exists()
    or not shutil.which("pgbackrest") or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"),
    reason="needs root, the postgres account, PostgreSQL 15 and pgbackrest (apt-get install postgresql-15 pgbackrest)")

#: Stands in for systemd on the throwaway cluster: the scripts only ask it whether the unit runs, to stop and start it.
#: Stands in for `systemd-run --wait --pipe`: runs the command here with the unit's EnvironmentFile and --setenv.
SYSTEMD_RUN = """#!/bin/bash
while [ $# -gt 0 ]; do
  case "$1" in
    --property=EnvironmentFile=*) set -a; . "${1#--property=EnvironmentFile=}"; set +a ;;
    --setenv=*) export "${1#--setenv=}" ;;
    --*) ;;
    *) break ;;
  esac
  shift
done
exec "$@"
"""

#: Stands in for the deploy user's `sudo -n [-u USER]`: runs the command as postgres, keeping the environment.
SUDO = """#!/bin/bash
while [[ $1 == -* ]]; do [[ $1 == -u ]] && shift; shift; done
exec runuser -u postgres -- "$@"
"""

SYSTEMCTL = """#!/bin/bash
data={data}; ctl="runuser -u postgres -- {bin}/pg_ctl -D $data"
case "$1" in
  is-active) $ctl status >/dev/null 2>&1 ;;
  stop) if $ctl status >/dev/null 2>&1; then $ctl -m fast -w stop >/dev/null; fi ;;
  start) $ctl -l {base}/postgresql.log -w start >/dev/null ;;
  *) echo "systemctl stand-in: $*" >&2; exit 1 ;;
esac
"""


class Cluster:
    """A PostgreSQL 15 cluster archiving into an encrypted pgBackRest repository, all under one /tmp dir."""

    PORT = 5496

    def __init__(self, base: pathlib.Path) -> None:
        self.base, self.data, self.results = base, base / "data", base / "results"
        (base / "bin").mkdir()
        for name in ("repo", "log", "lock", "spool"):
            (base / name).mkdir()
        (base / "pgbackrest.conf").write_text(
            f"[global]\nrepo1-path={base}/repo\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={'k' * 32}\n"
            f"log-path={base}/log\nlock-path={base}/lock\nspool-path={base}/spool\nstart-fast=y\n"
            f"[ts]\npg1-path={self.data}\npg1-port={self.PORT}\npg1-socket-path={base}\n")
        systemctl = base / "bin" / "systemctl"
        systemctl.write_text(SYSTEMCTL.format(data=self.data, bin=PG_BIN, base=base))
        systemctl.chmod(0o755)
        for name, text in (("systemd-run", SYSTEMD_RUN), ("sudo", SUDO)):
            (base / "bin" / name).write_text(text)
            (base / "bin" / name).chmod(0o755)
        subprocess.run(["chown", "-R", "postgres:postgres", str(base)], check=True)
        base.chmod(0o755)
        self.env = dict(os.environ, PATH=f"{base}/bin:{os.environ['PATH']}", PGHOST=str(base),
                        PGBACKREST_CONFIG=str(base / "pgbackrest.conf"))
        self.as_postgres([f"{PG_BIN}/initdb", "-D", str(self.data), "-A", "peer", "--no-sync"])
        # Peer authentication that also lets this test (root) in as postgres, for the app's own schema check.
        (self.data / "pg_hba.conf").write_text("local all all peer map=test\n")
        (self.data / "pg_ident.conf").write_text("test root postgres\ntest postgres postgres\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.PORT}\nlisten_addresses = ''\nunix_socket_directories = '{base}'\n"
                       "archive_mode = on\narchive_timeout = 60\nfsync = off\n"
                       f"archive_command = 'pgbackrest --config={base}/pgbackrest.conf --stanza=ts archive-push %p'\n")
        self.as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-l", str(base / "postgresql.log"), "-w", "start"])
        self.as_postgres(["pgbackrest", "--stanza=ts", "stanza-create"])
        self.sql("CREATE TABLE jobs (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        self.sql("INSERT INTO jobs (id) SELECT generate_series(1, 1000)")
        self.as_postgres(["pgbackrest", "--stanza=ts", "--type=full", "backup"])

    def as_postgres(self, command: list[str]) -> str:
        return subprocess.run(["runuser", "-u", "postgres", "--", *command], env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def sql(self, query: str) -> str:
        return self.as_postgres(["psql", "-X", "-A", "-t", "-q", "-p", str(self.PORT), "-d", "postgres",
                                 "-v", "ON_ERROR_STOP=1", "-c", query]).strip()

    @property
    def postgres(self) -> dict:
        return {"service": "postgresql@15-main", "version": 15, "port": self.PORT}

    def step(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=120)

    def restore(self, plan: restore.Plan, *, fatal_check: bool) -> list[subprocess.CompletedProcess[str]]:
        """The db host's steps in the order restore_deploy.py runs them; stops at the first that fails."""
        log = str(self.base / "postgresql.log")
        steps = [restore.check_script(plan, self.postgres, "db1", fatal=fatal_check, results=str(self.results)),
                 restore.stop_postgres_script(self.postgres, "db1"),
                 restore.restore_script(plan, "db1", results=str(self.results)),
                 restore.recover_script(plan, self.postgres, "db1", results=str(self.results), timeout=60).replace(
                     "/var/log/postgresql/postgresql-15-main.log", log)]
        done = []
        for script in steps:
            done.append(self.step(script))
            if done[-1].returncode != 0:
                break
        return done

    def result(self, name: str) -> dict:
        return json.loads((self.results / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def cluster():
    base = pathlib.Path(tempfile.mkdtemp(prefix="tsdeploy-restore-", dir="/tmp"))
    try:
        yield Cluster(base)
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/pg_ctl", "-D", str(base / "data"), "-m",
                        "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _fact_output(cluster: Cluster, command: str) -> list[str]:
    """The fact command's output lines as pyinfra hands them to process() (trailing whitespace dropped)."""
    return [line.rstrip() for line in cluster.step(command).stdout.splitlines()]


@needs_pgbackrest
def test_the_info_fact_reads_pgbackrests_real_output_which_ends_without_a_newline(cluster: Cluster) -> None:
    info = facts.parse_info(_fact_output(cluster, facts.BackupInfo().command("ts")))
    assert info["error"] is None, info
    stanza = backup_cli.stanza_of(info["stanzas"], "ts")
    assert stanza["status"]["message"] == "ok" and backup_cli.backups(stanza)[0]["type"] == "full"
    broken = facts.parse_info(_fact_output(cluster, facts.BackupInfo().command("ts").replace("info", "infox")))
    assert broken["stanzas"] is None and "invalid command 'infox'" in broken["error"]


@needs_pgbackrest
def test_the_drill_fact_reads_a_result_file_that_ends_without_a_newline(cluster: Cluster) -> None:
    path = cluster.base / "last.json"
    path.write_text('{"passed": true, "started_at": "2026-12-05T04:00:00Z"}')
    read = facts.parse_json_file(_fact_output(cluster, facts.DrillResult().command(str(path))))
    assert read["data"] == {"passed": True, "started_at": "2026-12-05T04:00:00Z"} and read["error"] is None
    assert abs(read["now"] - time.time()) < 60
    missing = facts.parse_json_file(_fact_output(cluster, facts.DrillResult().command(str(cluster.base / "none"))))
    assert missing["data"] is None and missing["error"] is None


@needs_pgbackrest
def test_a_restore_to_a_time_keeps_every_write_before_it_and_none_after(cluster: Cluster) -> None:
    cluster.sql("INSERT INTO jobs (id) SELECT generate_series(1001, 1100)")
    time.sleep(1.1)
    target = datetime.datetime.now(UTC)
    time.sleep(1.1)
    cluster.sql("INSERT INTO jobs (id) SELECT generate_series(2001, 2100)")
    cluster.sql("DELETE FROM jobs WHERE id <= 500")
    plan = restore.Plan("run-time", restore.TIME, backup_cli.pg_target(target), "ts", None)
    steps = cluster.restore(plan, fatal_check=True)
    assert [step.returncode for step in steps] == [0, 0, 0, 0], steps[-1].stderr
    assert cluster.sql("SELECT count(*), min(id), max(id) FROM jobs") == "1100|1|1100"
    assert cluster.result("check") == {"run": "run-time", "ok": True, "message": "every WAL up to now is archived"}
    assert cluster.result("restore")["backup_set"].endswith("F") and cluster.result("restore")["seconds"] > 0
    recovery = cluster.result("recovery")
    point = datetime.datetime.fromisoformat(recovery["recovery_point"])
    assert point <= target and recovery["run"] == "run-time" and recovery["timeline"] == "2"


@needs_pgbackrest
def test_a_restore_to_the_latest_keeps_every_write_and_a_stopped_cluster_is_only_noted(cluster: Cluster) -> None:
    cluster.sql("INSERT INTO jobs (id) SELECT generate_series(3001, 3010)")
    expected = cluster.sql("SELECT count(*), max(id) FROM jobs")
    plan = restore.Plan("run-latest", restore.LATEST, None, "ts", None)
    steps = cluster.restore(plan, fatal_check=False)
    assert [step.returncode for step in steps] == [0, 0, 0, 0], steps[-1].stderr
    assert cluster.sql("SELECT count(*), max(id) FROM jobs") == expected
    cluster.step(restore.stop_postgres_script(cluster.postgres, "db1"))
    steps = cluster.restore(restore.Plan("run-down", restore.LATEST, None, "ts", None), fatal_check=False)
    assert [step.returncode for step in steps] == [0, 0, 0, 0], steps[-1].stderr
    assert cluster.result("check")["ok"] is False and "was not running" in cluster.result("check")["message"]
    assert cluster.sql("SELECT count(*), max(id) FROM jobs") == expected


@needs_pgbackrest
def test_a_failing_check_stops_a_timed_restore_before_anything_else_with_the_reason(cluster: Cluster) -> None:
    plan = restore.Plan("run-bad", restore.TIME, backup_cli.pg_target(datetime.datetime.now(UTC)), "nosuch", None)
    steps = cluster.restore(plan, fatal_check=True)
    assert len(steps) == 1 and steps[0].returncode == 1
    assert "db1: pgbackrest check failed (above)" in steps[0].stderr and "nothing was stopped" in steps[0].stderr
    assert cluster.result("check")["ok"] is False and cluster.result("check")["run"] == "run-bad"
    assert cluster.sql("SELECT 1") == "1"  # PostgreSQL still runs


@needs_pgbackrest
def test_a_target_beyond_the_archive_stops_recovery_with_postgresqls_reason(cluster: Cluster) -> None:
    future = backup_cli.pg_target(datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    steps = cluster.restore(restore.Plan("run-future", restore.TIME, future, "ts", None), fatal_check=False)
    assert [step.returncode for step in steps] == [0, 0, 0, 1]
    assert "recovery ended before configured recovery target was reached" in steps[-1].stderr
    assert "db1: PostgreSQL stopped during recovery (its log above)" in steps[-1].stderr
    steps = cluster.restore(restore.Plan("run-again", restore.LATEST, None, "ts", None), fatal_check=False)
    assert steps[-1].returncode == 0, steps[-1].stderr  # the same host recovers with another target


@needs_pgbackrest
def test_the_live_releases_migrations_run_only_when_the_restored_schema_is_behind(cluster: Cluster) -> None:
    # This virtualenv, where the app is installed, stands in for the live release (`current` is a release's venv).
    (cluster.base / "current").symlink_to(pathlib.Path(sys.prefix))
    cluster.sql("CREATE DATABASE app")
    env_file = cluster.base / "env"
    env_file.write_text(f'DATABASE_URL="postgresql://postgres@/app?host={cluster.base}&port={cluster.PORT}"\n'
                        'FLASK_ENV="development"\n')
    owner_env_file = cluster.base / "owner.env"
    owner_env_file.write_text(f'DATABASE_URL="postgresql://postgres@/app?host={cluster.base}&port={cluster.PORT}"\n')
    app = {"user": "root", "env_file": str(env_file), "owner_env_file": str(owner_env_file),
           "current_dir": str(cluster.base / "current"),
           "migration_lock_timeout": "5s", "migration_statement_timeout": "15min"}
    plan = restore.Plan("run-schema", restore.LATEST, None, "ts", "app1")
    first = cluster.step(restore.migrate_script(plan, app, "app1", results=str(cluster.results)))
    assert first.returncode == 0, first.stderr
    behind = cluster.result("schema")
    assert behind["run"] == "run-schema" and behind["before"] == "none" and behind["migrated"] is True
    assert cluster.as_postgres(["psql", "-X", "-A", "-t", "-p", str(cluster.PORT), "-d", "app", "-c",
                                "SELECT version_num FROM alembic_version"]).strip() == behind["head"]
    again = cluster.step(restore.migrate_script(plan, app, "app1", results=str(cluster.results)))
    assert again.returncode == 0, again.stderr
    assert cluster.result("schema") == {"run": "run-schema", "before": behind["head"], "head": behind["head"],
                                        "migrated": False}


APP = {"user": "talentsphere", "env_file": "/etc/talentsphere/env", "owner_env_file": "/etc/talentsphere/owner.env",
       "current_dir": "/opt/talentsphere/current",
       "ready_url": "http://10.0.0.13:8000/health/ready", "ready_timeout": 60, "migration_lock_timeout": "5s",
       "migration_statement_timeout": "15min"}
PG = {"service": "postgresql@15-main", "version": 15, "port": 5432}


@pytest.mark.parametrize("name, script", [
    ("check", restore.check_script(restore.Plan("r", restore.TIME, "2026-12-01 09:00:00+00:00", "ts", "app1"), PG,
                                   "db1", fatal=True)),
    ("stop app", restore.stop_app_script()),
    ("stop postgres", restore.stop_postgres_script(PG, "db1")),
    ("restore", restore.restore_script(restore.Plan("r", restore.LATEST, None, "ts", "app1"), "db1")),
    ("recover", restore.recover_script(restore.Plan("r", restore.LATEST, None, "ts", "app1"), PG, "db1")),
    ("migrate", restore.migrate_script(restore.Plan("r", restore.LATEST, None, "ts", "app1"), APP, "app1")),
    ("start app", restore.start_app_script(APP, "app1")),
    ("run unit", restore.run_unit_script("pgbackrest-backup@full.service")),
])
def test_every_step_is_a_bash_script_that_parses(name: str, script: str) -> None:
    result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, f"{name}: {result.stderr}"


def test_the_app_tier_stops_timer_first_and_starts_on_the_live_release() -> None:
    assert restore.stop_app_script().splitlines()[-1] == (
        "systemctl stop talentsphere-flush-views.timer talentsphere-flush-views.service talentsphere.service")
    start = restore.start_app_script(APP, "app1")
    assert 'release=$(basename "$(readlink -f /opt/talentsphere/current)")' in start
    assert 'http://10.0.0.13:8000/health/ready 60 "$release" 3' in start


def test_result_strings_survive_quotes_backslashes_and_newlines(tmp_path: pathlib.Path) -> None:
    script = (restore._start(restore.Plan('r"1', restore.LATEST, None, "ts", None), str(tmp_path))
              + 'record odd "$(printf \'{"run": %s, "text": %s}\' "$(json_str "$run")" '
                '"$(json_str "$(printf \'a "b" \\\\c\\nd\\te\')")")"\n')
    subprocess.run(["bash", "-c", script], check=True)
    assert json.loads((tmp_path / "odd.json").read_text()) == {"run": 'r"1', "text": 'a "b" \\c d e'}
