"""Backups: the db host's WAL archiving, the backups' age, the repository's permissions, the drill, the timers.

Checks run on the backup host (`backup`) and on the db host (`db`). Without a backup host in the inventory
there are no backups and no archiving: the controls are reported as not run, saying so.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from roles.backup import metrics
from roles.backup.context import TLS_DIR
from tsdeploy.topology import Topology
from tsdeploy.verify import load_for_verify
from verifyhosts import Target

CONTROLS = ("ts-backup-01", "ts-backup-02", "ts-backup-03", "ts-backup-04", "ts-backup-05", "ts-backup-06")
#: Beyond archive_timeout, how long a completed WAL file may wait for the archiver (archive-push is async).
ARCHIVE_MARGIN = 60
#: The full backup runs weekly (backup_full_calendar); one day of slack for a run delayed or retried.
FULL_MAX_AGE = datetime.timedelta(days=7, hours=24)
#: A full or differential backup runs daily; slack for the timer's random delay and the backup's own duration.
ANY_MAX_AGE = datetime.timedelta(days=1, hours=3)
#: The drill runs weekly (backup_drill_calendar); one day of slack.
DRILL_MAX_AGE = datetime.timedelta(days=8)
#: A WAL file's name: timeline, then the segment number as two 32-bit halves (log and segment within it).
_WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
UTC = datetime.timezone.utc


@functools.cache
def _backup_timers(inventory: str) -> tuple[str, ...] | None:
    """The timers the deploy installs on the backup host; None when the inventory has no backup host."""
    topology = Topology(load_for_verify(inventory, with_secrets=False).inventory)
    if not topology.hosts("backup"):
        return None
    return tuple(topology.service("backup")["timers"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    inventory = metafunc.config.getoption("inventory")
    if inventory is None:
        return
    timers = _backup_timers(str(inventory))
    if "backup_timer" in metafunc.fixturenames:
        metafunc.parametrize("backup_timer", list(timers or ()))
    if "no_backup_host" in metafunc.fixturenames:
        metafunc.parametrize("no_backup_host", ["inventory"] if timers is None else [])


@pytest.mark.control(*CONTROLS)
def test_backups_are_configured(no_backup_host: str) -> None:
    # Collected only when the inventory has no backup host: every backup control is then not run, with why.
    pytest.skip("the inventory has no backup host: no backups, no WAL archiving (add a host to the backup group "
                "and backup_repo_cipher_pass to the vault, then deploy)")


def _needs_backups(db: Target) -> None:
    if not db.topology.hosts("backup"):
        pytest.skip("the inventory has no backup host: WAL archiving is off")


def _stanza(target: Target) -> str:
    return str(target.topology.service("backup")["stanza"])


# --- ts-backup-01: WAL archiving works --------------------------------------------------------------------------------


def _archiver(db: Target) -> dict[str, Any]:
    return db.psql_json(
        "SELECT a.archived_count, a.last_archived_wal, a.failed_count, a.last_failed_wal, "
        "a.last_archived_time::text, a.last_failed_time::text, "
        "extract(epoch FROM now() - a.last_archived_time)::float AS archived_ago, "
        "a.last_failed_time IS NOT NULL AND (a.last_archived_time IS NULL "
        "  OR a.last_failed_time >= a.last_archived_time) AS failing, "
        "pg_walfile_name(pg_current_wal_lsn()) AS current_wal, "
        "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size, "
        "(SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout') AS archive_timeout "
        "FROM pg_stat_archiver a")[0]


def _segment(name: str | None, segment_size: int) -> int | None:
    """A WAL file's position in the WAL stream (segments since 0/0), timeline left aside; None for other files.

    >>> _segment("000000010000000000000003", 16 * 1024 * 1024), _segment("00000002.history", 16 * 1024 * 1024)
    (3, None)
    """
    match = _WAL_NAME.match(name or "")
    if not match:
        return None
    return int(match[2], 16) * (0x100000000 // segment_size) + int(match[3], 16)


@pytest.mark.control("ts-backup-01")
def test_postgresql_archives_its_wal_with_pgbackrest(db: Target) -> None:
    _needs_backups(db)
    stanza = _stanza(db)
    mode, command = db.show("archive_mode"), db.show("archive_command")
    assert mode == "on", (f"{db}: archive_mode is {mode}: PostgreSQL archives no WAL, point-in-time recovery is "
                          "impossible; fix: tsdeploy deploy INVENTORY --allow-restart postgres (archive_mode needs a "
                          "restart)")
    assert "pgbackrest" in command and f"--stanza={stanza}" in command and "archive-push" in command, (
        f"{db}: archive_command is {command!r}, not pgBackRest's archive-push for stanza {stanza}")


@pytest.mark.control("ts-backup-01")
def test_the_archive_command_is_not_failing(db: Target) -> None:
    _needs_backups(db)
    archiver = _archiver(db)
    assert not archiver["failing"], (
        f"{db}: the last WAL archiving attempt failed ({archiver['last_failed_wal']} at "
        f"{archiver['last_failed_time']}; {archiver['failed_count']} failures since the statistics were reset; last "
        f"success {archiver['last_archived_wal']} at {archiver['last_archived_time']}): WAL piles up in pg_wal and "
        "recent writes cannot be restored; see /var/log/postgresql and /var/log/pgbackrest on the db host")


@pytest.mark.control("ts-backup-01")
def test_no_completed_wal_file_waits_longer_than_archive_timeout(db: Target) -> None:
    # An idle database writes no WAL, so an old last_archived_time alone proves nothing: what must not happen
    # is a completed WAL file (one before the file being written) still unarchived after archive_timeout.
    _needs_backups(db)
    archiver = _archiver(db)
    assert archiver["archived_count"] > 0 or archiver["last_archived_wal"], (
        f"{db}: PostgreSQL has archived no WAL file since its statistics were reset; fix: check that the stanza "
        "exists (tsdeploy deploy runs stanza-create) and that archive_mode is on")
    current = _segment(archiver["current_wal"], archiver["segment_size"])
    last = _segment(archiver["last_archived_wal"], archiver["segment_size"])
    if current is None or last is None:
        return  # the last archived file is a timeline history file: the new timeline's first WAL is being written
    waiting = current - last - 1
    limit = archiver["archive_timeout"] + ARCHIVE_MARGIN
    assert waiting <= 0 or (archiver["archived_ago"] or 0) <= limit, (
        f"{db}: {waiting} completed WAL file(s) after {archiver['last_archived_wal']} are not archived, and the last "
        f"file was archived {archiver['archived_ago']:.0f} s ago (archive_timeout {archiver['archive_timeout']} s + "
        f"{ARCHIVE_MARGIN} s): archiving is stuck; see /var/log/pgbackrest on the db host")


@pytest.mark.control("ts-backup-01")
def test_pgbackrest_check_archives_wal_written_now(backup: Target) -> None:
    # pgBackRest's own end-to-end check: it switches the WAL file on the db host and waits until that file is in
    # the repository. The one check of the suite that makes PostgreSQL write something: one WAL switch.
    stanza = backup.ctx["backup"]["stanza"]
    result = backup.sudo("-u postgres pgbackrest --stanza=%s check", stanza)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line or "WARN" in line]
    assert result.rc == 0, f"{backup}: pgbackrest --stanza={stanza} check exited {result.rc}: {errors[-3:]}"


# --- ts-backup-02: the backups are recent ------------------------------------------------------------------------------


def _info(backup: Target) -> Mapping[str, Any]:
    stanza = backup.ctx["backup"]["stanza"]
    document = json.loads(backup.sudo_check("-u postgres pgbackrest --stanza=%s --output=json info", stanza))
    entry = next((item for item in document if item.get("name") == stanza), None)
    assert entry is not None, f"{backup}: pgBackRest's info has no stanza {stanza}"
    return entry


def _repositories(backup: Target) -> list[int]:
    return [1] + ([2] if backup.ctx["backup"]["s3"] else [])


def _newest(entry: Mapping[str, Any], repo: int, types: tuple[str, ...]) -> Mapping[str, Any] | None:
    done = [item for item in entry.get("backup") or () if not item.get("error") and item["type"] in types
            and int((item.get("database") or {}).get("repo-key", 1)) == repo]
    return max(done, key=lambda item: item["timestamp"]["stop"], default=None)


def _age(item: Mapping[str, Any]) -> datetime.timedelta:
    return datetime.datetime.now(UTC) - datetime.datetime.fromtimestamp(item["timestamp"]["stop"], UTC)


@pytest.mark.control("ts-backup-02")
def test_the_newest_full_backup_is_younger_than_its_weekly_schedule_allows(backup: Target) -> None:
    entry = _info(backup)
    for repo in _repositories(backup):
        full = _newest(entry, repo, ("full",))
        assert full is not None, (f"{backup}: repository {repo} holds no full backup; fix: tsdeploy backup INVENTORY "
                                  "--type full")
        assert _age(full) <= FULL_MAX_AGE, (
            f"{backup}: the newest full backup in repository {repo}, {full['label']}, ended {_age(full)} ago (more "
            f"than {FULL_MAX_AGE}); see journalctl -u pgbackrest-backup@full there")


@pytest.mark.control("ts-backup-02")
def test_the_newest_backup_is_younger_than_a_day(backup: Target) -> None:
    entry = _info(backup)
    for repo in _repositories(backup):
        newest = _newest(entry, repo, ("full", "diff", "incr"))
        assert newest is not None, f"{backup}: repository {repo} holds no backup; fix: tsdeploy backup INVENTORY"
        assert _age(newest) <= ANY_MAX_AGE, (
            f"{backup}: the newest backup in repository {repo}, {newest['label']} ({newest['type']}), ended "
            f"{_age(newest)} ago (more than {ANY_MAX_AGE}); see journalctl -u 'pgbackrest-backup@*' there")


# --- ts-backup-03: the repository and configuration are not readable by others ------------------------------------------


def _open_to_others(target: Target, path: str, *, files_only: bool) -> list[str]:
    """Paths under `path` that others may read, write or enter (files only: directories may be listable).

    Symbolic links (pgBackRest's `latest`) always show 777 and grant nothing: their targets are checked. Public
    certificates (*.crt) may be world-readable; keys and the configuration may not.
    """
    test = ("-type f ! -name '*.crt' -perm /o=rwx -o -type f -perm /o=w" if files_only
            else "! -type l -perm /o=rwx")
    result = target.sudo(f"find %s \\( {test} \\) -printf '%%m %%u:%%g %%p\\n'", path)
    assert result.rc == 0 or "No such file" in result.stderr, f"{target}: find {path}: {result.stderr.strip()}"
    return result.stdout.splitlines()[:20]


def _stat(target: Target, path: str) -> tuple[str, str, str] | None:
    result = target.sudo("stat -c '%%U %%G %%a' %s", path)
    return tuple(result.stdout.split()) if result.rc == 0 else None  # type: ignore[return-value]


@pytest.mark.control("ts-backup-03")
def test_the_repository_and_the_wal_spool_are_not_readable_by_others(backup: Target) -> None:
    ctx = backup.ctx["backup"]
    for path in (ctx["repo_path"], ctx["spool_path"]):
        opened = _open_to_others(backup, path, files_only=False)
        assert not opened, f"{backup}: under {path}, others have access to: {opened}"


@pytest.mark.control("ts-backup-03")
def test_the_wal_spool_of_the_db_host_is_not_readable_by_others(db: Target) -> None:
    _needs_backups(db)
    spool = db.topology.service("backup")["spool_path"]
    opened = _open_to_others(db, spool, files_only=False)
    assert not opened, f"{db}: under {spool}, others have access to: {opened}"


def _check_configuration(target: Target) -> None:
    ctx = target.topology.service("backup")
    conf = _stat(target, ctx["conf_path"])
    assert conf == ("root", "postgres", "640"), (
        f"{target}: {ctx['conf_path']} (it holds the repository's passphrase) is {conf}, not root postgres 640")
    key = f"{TLS_DIR}/host.key"
    found = _stat(target, key)
    assert found is None or (found[0] == "postgres" and found[2] == "600"), f"{target}: {key} is {found}, not 600"
    for path in (ctx["conf_dir"], ctx["log_path"]):
        opened = _open_to_others(target, path, files_only=True)
        assert not opened, f"{target}: under {path}, others may read or write: {opened}"


@pytest.mark.control("ts-backup-03")
def test_pgbackrest_configuration_and_key_are_not_readable_by_others_on_the_backup_host(backup: Target) -> None:
    _check_configuration(backup)


@pytest.mark.control("ts-backup-03")
def test_pgbackrest_configuration_and_key_are_not_readable_by_others_on_the_db_host(db: Target) -> None:
    _needs_backups(db)
    _check_configuration(db)


# --- ts-backup-04: the restore drill passed recently -----------------------------------------------------------------


@pytest.mark.control("ts-backup-04")
def test_the_last_restore_drill_passed_within_eight_days(backup: Target) -> None:
    path = backup.ctx["backup"]["drill_result"]
    result = backup.sudo("cat %s", path)
    assert result.rc == 0, (f"{backup}: no drill result at {path}: the restore drill has not run yet; fix: "
                            "tsdeploy drill INVENTORY")
    drill = json.loads(result.stdout)
    assert drill.get("passed") is True, (
        f"{backup}: the last restore drill ({drill.get('finished_at')}) failed: {drill.get('error')}; "
        "tsdeploy drill INVENTORY runs it again and prints the details")
    finished = datetime.datetime.fromisoformat(str(drill["finished_at"]).replace("Z", "+00:00"))
    age = datetime.datetime.now(UTC) - finished.astimezone(UTC)
    assert age <= DRILL_MAX_AGE, (f"{backup}: the last restore drill passed {age} ago (more than {DRILL_MAX_AGE}); "
                                  "see journalctl -u pgbackrest-drill there")


# --- ts-backup-05: the timers run, and their last runs succeeded ------------------------------------------------------


def _show(target: Target, unit: str, prop: str) -> str:
    return target.sudo_check("systemctl show -p %s --value %s", prop, unit).strip()


@pytest.mark.control("ts-backup-05")
def test_the_timer_is_enabled_and_active(backup: Target, backup_timer: str) -> None:
    timer = backup.host.service(backup_timer)
    assert timer.is_enabled and timer.is_running, (
        f"{backup}: {backup_timer} enabled={timer.is_enabled} active={timer.is_running}: its backups or drills "
        "do not run; fix: tsdeploy deploy INVENTORY")


@pytest.mark.control("ts-backup-05")
def test_the_last_run_of_the_timers_unit_succeeded(backup: Target, backup_timer: str) -> None:
    unit = _show(backup, backup_timer, "Unit")
    result = _show(backup, unit, "Result")
    assert result == "success", (f"{backup}: the last run of {unit} (started by {backup_timer}) ended with "
                                 f"Result={result}; see journalctl -u {unit} there")


# --- ts-backup-06: the backup metrics for node exporter are present and fresh -------------------------------------------


def _textfile(backup: Target, path: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(metric name, sorted label pairs): value} of a textfile on the backup host, after its owner and mode."""
    found = _stat(backup, path)
    assert found is not None, (f"{backup}: {path} does not exist: no backup or drill wrote its metrics since the role "
                               "came; fix: tsdeploy backup INVENTORY (the unit writes them when it ends)")
    assert found == ("root", "root", "644"), f"{backup}: {path} is {found}, not root root 644"
    samples = {}
    for line in backup.sudo_check("cat %s", path).splitlines():
        match = re.match(r"^([a-z_]+)\{([^}]*)\} (\S+)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match[2])))
            samples[(match[1], labels)] = float(match[3])
    return samples


@pytest.mark.control("ts-backup-06")
def test_the_backup_metrics_hold_the_newest_backup_of_each_type_that_pgbackrest_knows(backup: Target) -> None:
    # Fresh = written after the newest backup: each type's stop time equals pgBackRest's own (a stale file would
    # make BackupTooOld fire on backups that exist, or stay quiet on a writer that stopped).
    ctx = backup.ctx["backup"]
    written = _textfile(backup, ctx["metrics_file"])
    entry = _info(backup)
    for repo in _repositories(backup):
        for kind in ("full", "diff", "incr"):
            newest = _newest(entry, repo, (kind,))
            key = (metrics.BACKUP_LAST_SUCCESS.name,
                   tuple(sorted({"stanza": ctx["stanza"], "repo": str(repo), "type": kind}.items())))
            assert written.get(key) == (newest["timestamp"]["stop"] if newest else None), (
                f"{backup}: {ctx['metrics_file']} says the newest {kind} backup in repository {repo} ended at "
                f"{written.get(key)}, pgBackRest says {newest and newest['timestamp']['stop']}: the metrics are stale; "
                f"see journalctl -u 'pgbackrest-backup@*' there (the ExecStopPost line)")


@pytest.mark.control("ts-backup-06")
def test_the_drill_metrics_hold_the_last_drills_result(backup: Target) -> None:
    ctx = backup.ctx["backup"]
    written = _textfile(backup, ctx["drill_metrics_file"])
    drill = json.loads(backup.sudo_check("cat %s", ctx["drill_result"]))
    finished = datetime.datetime.fromisoformat(str(drill["finished_at"]).replace("Z", "+00:00")).timestamp()
    stanza = (("stanza", ctx["stanza"]),)
    run, success = (written.get((metric.name, stanza)) for metric in (metrics.DRILL_LAST_RUN,
                                                                      metrics.DRILL_LAST_RUN_SUCCESS))
    assert (run, success) == (finished, 1.0 if drill.get("passed") is True else 0.0), (
        f"{backup}: {ctx['drill_metrics_file']} does not describe the last drill ({drill.get('finished_at')}, passed: "
        f"{drill.get('passed')}): the metrics are stale; see journalctl -u pgbackrest-drill there")
