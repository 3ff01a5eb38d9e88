"""`tsdeploy backup`, `backups`, `restore` and `drill`: the day-two commands of the pgBackRest backups.

The backup host (the inventory's `backup` group) keeps an encrypted pgBackRest repository of the db host's
cluster: timers take full and differential backups and run a restore drill; PostgreSQL archives its WAL
there continuously (roles/backup/README.md). These commands act on that setup:

- `backup` starts the same unit the timer starts (pgbackrest-backup@<type>.service), so that a manual backup
  shares the scheduled one's journal, lock and expiry, and prints the new backup;
- `backups` lists the repository's backups and its WAL archive (pgBackRest's `info`, read-only);
- `restore` replaces the live database in place with its state at a time (point-in-time recovery) or the
  newest archived state, stopping the app tier meanwhile (roles/backup/restore.py has the steps); without
  `--yes` it only prints what it would do and what would be lost;
- `drill` runs the restore drill now (a scratch restore on the backup host, checked table by table) and
  prints its result.

Progress goes to stderr, results to stdout. Every error names what failed, where, and the fix.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import time
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

import roles
from roles.registry import Group
from tsdeploy.inventory import Inventory, InventoryError, load
from tsdeploy.topology import Topology

ROLES_DIR = pathlib.Path(roles.__file__).parent
# The entry files live in the roles package (installed beside tsdeploy, not in its bundle).
RUN_FILE = ROLES_DIR / "backup" / "run_deploy.py"
RESTORE_FILE = ROLES_DIR / "backup" / "restore_deploy.py"
INFO_FACT = "roles.backup.facts.BackupInfo"
DRILL_FACT = "roles.backup.facts.DrillResult"
RESULTS_FACT = "roles.backup.facts.RestoreResults"
TYPES = ("full", "diff", "incr")
#: A drill result counts as this run's when it started at most this long before the command did (clock skew).
DRILL_CLOCK_SLACK = 5.0

UTC = datetime.timezone.utc
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$")
_NAMED_ZONE = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?) +([A-Za-z][A-Za-z0-9_+/-]*)$")
TIME_FORMATS = ("ISO 8601 with an offset, e.g. 2026-12-01T10:00:00+01:00 or 2026-12-01T09:00:00Z, or "
                "'YYYY-MM-DD HH:MM:SS ZONE' with a zone name, e.g. '2026-12-01 10:00:00 Europe/Berlin' or "
                "'2026-12-01 09:00:00 UTC'")


class Refused(ValueError):
    """A request the backups cannot satisfy; the message says why and what to do instead."""


# --- formatting -------------------------------------------------------------------------------------------------------


def format_time(moment: datetime.datetime | float | int | None) -> str:
    """A time in UTC as the tables print it.

    >>> format_time(1796094160)
    '2026-12-01 03:02:40 UTC'
    """
    if moment is None:
        return "-"
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_size(size: int | float | None) -> str:
    """Bytes in binary units.

    >>> format_size(23090903), format_size(512), format_size(None)
    ('22.0 MiB', '512 B', '-')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """A duration as an operator reads it.

    >>> format_duration(2.4), format_duration(184), format_duration(7380), format_duration(200000)
    ('2.4 s', '3 min 4 s', '2 h 3 min', '2 d 7 h')
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, headers first.

    >>> table(["a", "bb"], [["xyz", "1"]])
    ['a    bb', 'xyz  1']
    """
    rows = [list(map(str, row)) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [list(headers), *rows]]


# --- pgBackRest's info ------------------------------------------------------------------------------------------------


def stanza_of(stanzas: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    """The entry of `name` in pgBackRest's info document; Refused when the repository does not know it."""
    for entry in stanzas:
        if entry.get("name") == name:
            return entry
    raise Refused(f"pgBackRest's info has no stanza {name!r}; fix: deploy the backup host (its finish step runs "
                  "stanza-create)")


def backups(stanza: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The stanza's backups, oldest first (every repository's)."""
    return sorted(stanza.get("backup") or (), key=lambda item: (item["timestamp"]["start"], item["label"]))


def _repo(backup: Mapping[str, Any]) -> int:
    return int((backup.get("database") or {}).get("repo-key", 1))


def status_line(stanza: Mapping[str, Any]) -> str:
    """The stanza's status, its cipher, and any repository that is not ok."""
    status = stanza.get("status") or {}
    text = f"stanza {stanza.get('name')}: {status.get('message', 'unknown')} (code {status.get('code', '?')})"
    if stanza.get("cipher"):
        text += f", cipher {stanza['cipher']}"
    if ((status.get("lock") or {}).get("backup") or {}).get("held"):
        text += ", a backup is running now"
    bad = [f"repo{repo.get('key')}: {(repo.get('status') or {}).get('message')}" for repo in stanza.get("repo") or ()
           if (repo.get("status") or {}).get("code", 0) != 0]
    return text + (f"; {'; '.join(bad)}" if bad else "")


def backup_rows(stanza: Mapping[str, Any]) -> list[list[str]]:
    """One row per backup: repository, label, type, start, stop, size, repository size, WAL range."""
    rows = []
    for item in backups(stanza):
        wal = item.get("archive") or {}
        label = item["label"] + (" (error)" if item.get("error") else "")
        rows.append([str(_repo(item)), label, item["type"], format_time(item["timestamp"]["start"]),
                     format_time(item["timestamp"]["stop"]), format_size((item.get("info") or {}).get("size")),
                     format_size(((item.get("info") or {}).get("repository") or {}).get("size")),
                     f"{wal.get('start', '-')}..{wal.get('stop', '-')}"])
    return rows


def backups_report(stanza: Mapping[str, Any]) -> list[str]:
    """What `tsdeploy backups` prints: the status, the table of backups, the WAL archive's range."""
    lines = [status_line(stanza)]
    rows = backup_rows(stanza)
    if rows:
        lines += table(["repo", "label", "type", "start", "stop", "size", "repo size", "WAL"], rows)
    else:
        lines.append("no backups yet: take one with `tsdeploy backup INVENTORY --type full`")
    for archive in stanza.get("archive") or ():
        repo = (archive.get("database") or {}).get("repo-key", 1)
        lines.append(f"WAL archive {archive.get('id')} (repo {repo}): {archive.get('min') or '-'} .. "
                     f"{archive.get('max') or '-'}")
    return lines


def new_backups(before: set[str], stanza: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The backups whose labels were not in `before`: what a manual run just took (one per repository)."""
    return [item for item in backups(stanza) if item["label"] not in before]


def backup_line(item: Mapping[str, Any], stanza: str, host: str) -> str:
    """One line naming a backup: label, type, repository, size, repository size, duration, WAL range."""
    info = item.get("info") or {}
    seconds = item["timestamp"]["stop"] - item["timestamp"]["start"]
    wal = item.get("archive") or {}
    return (f"backup {item['label']} ({item['type']}) of stanza {stanza} in repository {_repo(item)} on {host}: "
            f"{format_size(info.get('size'))} (repository {format_size((info.get('repository') or {}).get('size'))}),"
            f" {format_duration(seconds)}, ended {format_time(item['timestamp']['stop'])}, "
            f"WAL {wal.get('start', '-')}..{wal.get('stop', '-')}")


# --- restore targets --------------------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime.datetime:
    """A restore target in UTC, from ISO 8601 with an offset or 'YYYY-MM-DD HH:MM:SS ZONE' (an IANA zone name).

    Refused for anything else, and for a local time a daylight-saving change skips or repeats, since a
    restore to the wrong hour loses or keeps an hour of writes.

    >>> parse_time("2026-12-01T10:00:00+01:00").isoformat()
    '2026-12-01T09:00:00+00:00'
    >>> parse_time("2026-12-01 10:00:00 Europe/Berlin").isoformat()
    '2026-12-01T09:00:00+00:00'
    """
    text = text.strip()
    if _ISO.match(text):
        try:
            return datetime.datetime.fromisoformat(text).astimezone(UTC)
        except ValueError as error:
            raise Refused(f"{text!r} is not a valid time: {error}") from None
    match = _NAMED_ZONE.match(text)
    if not match:
        raise Refused(f"{text!r} names no time zone or is not a time: write {TIME_FORMATS}")
    try:
        naive = datetime.datetime.fromisoformat(f"{match[1]}T{match[2]}")
    except ValueError as error:
        raise Refused(f"{text!r} is not a valid time: {error}") from None
    name = match[3]
    if name.upper() in ("UTC", "GMT"):
        return naive.replace(tzinfo=UTC)
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Refused(f"{name!r} in {text!r} is not a time zone name (e.g. Europe/Berlin, UTC); or write an "
                      "offset instead: 2026-12-01T10:00:00+01:00") from None
    local = naive.replace(tzinfo=zone)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise Refused(f"{match[1]} {match[2]} does not exist in {name} (the clocks skipped it); "
                      "write an offset instead")
    if naive.replace(tzinfo=zone, fold=0).utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset():
        raise Refused(f"{match[1]} {match[2]} happened twice in {name} (the clocks went back); write an offset to say "
                      "which, e.g. +02:00 or +01:00")
    return local.astimezone(UTC)


def stop_time(backup: Mapping[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(backup["timestamp"]["stop"], UTC)


def base_backup(stanza: Mapping[str, Any], target: datetime.datetime | None) -> Mapping[str, Any]:
    """The backup a restore starts from: the newest that ended before `target` (the newest of all for None).

    pgBackRest picks the same one (`restore --type=time` chooses the newest backup that stopped before the
    target). Refused, with the earliest reachable time, when there is none.
    """
    done = [item for item in backups(stanza) if not item.get("error")] or backups(stanza)
    if not done:
        raise Refused(f"the repository holds no backup of stanza {stanza.get('name')}: take one first with "
                      "`tsdeploy backup INVENTORY --type full`")
    if target is None:
        return done[-1]
    before = [item for item in done if stop_time(item) <= target]
    if not before:
        oldest = min(done, key=stop_time)
        raise Refused(f"{format_time(target)} is before the end of the oldest backup, {oldest['label']} "
                      f"({format_time(stop_time(oldest))}): a restore reaches only times after a backup ended; "
                      f"choose a time after {format_time(stop_time(oldest))}")
    return max(before, key=stop_time)


def check_target(target: datetime.datetime, now: datetime.datetime, stanza: Mapping[str, Any]) -> Mapping[str, Any]:
    """The backup a restore to `target` starts from; Refused for a time in the future or before every backup."""
    if target > now:
        raise Refused(f"{format_time(target)} is in the future (now is {format_time(now)}): there is nothing to "
                      "restore to yet; for everything written so far use --latest")
    return base_backup(stanza, target)


def pg_target(target: datetime.datetime) -> str:
    """The target as pgBackRest hands it to PostgreSQL's recovery_target_time (UTC, explicit offset).

    >>> pg_target(datetime.datetime(2026, 12, 1, 9, 0, 0, 250000, tzinfo=UTC))
    '2026-12-01 09:00:00.250000+00:00'
    """
    return target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def plan_lines(*, inventory: str, db_host: str, pg_service: str, app_hosts: Sequence[str],
               target: datetime.datetime | None, now: datetime.datetime, base: Mapping[str, Any], stanza: str,
               archive_timeout: int) -> list[str]:
    """What `tsdeploy restore` will do, in order, and what it loses: printed before anything is touched."""
    apps = ", ".join(app_hosts) or "(no app hosts)"
    where = f"to {format_time(target)}" if target is not None else "to the newest archived WAL"
    lines = [f"Restore plan for {inventory} (stanza {stanza}); nothing has been changed yet:"]
    steps = []
    if target is not None:
        steps.append(f"{db_host}: pgbackrest check, so that every WAL up to now is archived (the restore stops "
                     "here, before anything else, if it fails)")
    steps.append(f"stop the app tier on {apps} (talentsphere.service and the view-count flush timer): the API "
                 "answers errors from here on")
    if target is None:
        steps.append(f"{db_host}: pgbackrest check, so that every write up to the app's stop is archived (only a "
                     "warning if it fails, e.g. on a rebuilt db host)")
    steps.append(f"{db_host}: stop {pg_service} and restore its data directory in place {where} from backup "
                 f"{base['label']} ({base['type']}, ended {format_time(stop_time(base))}) plus the archived WAL; "
                 "PostgreSQL replays it and is promoted")
    if app_hosts:
        steps.append(f"{app_hosts[0]}: run the live release's migrations if the restored schema is behind it")
        steps.append(f"start the app tier on {apps} and wait until /health/ready answers on each")
    lines += [f"  {number}. {step}" for number, step in enumerate(steps, 1)]
    if target is not None:
        lost = format_duration((now - target).total_seconds())
        lines.append(f"Lost: every write after {format_time(target)}, on every table: the last {lost} of writes so "
                     "far, and those until the app stops.")
    else:
        lines.append("Lost: nothing that reached the WAL archive. If PostgreSQL still runs, every write up to the "
                     "app's stop is archived first; if the db host was lost, the writes of its last WAL file that was "
                     f"not archived yet (at most about backup_archive_timeout = {archive_timeout} s of writes).")
    lines.append("The app is down from the app tier's stop until it is ready again on the restored database.")
    return lines


def restore_report(results: Mapping[str, Mapping[str, Any]], run: str, base: Mapping[str, Any],
                   wall_seconds: float) -> list[str]:
    """What the restore did, from the result files its steps wrote (only this run's: `run` matches)."""
    mine = {name: entry for name, entry in results.items() if isinstance(entry, Mapping) and entry.get("run") == run}
    lines = []
    recovery, restored = mine.get("recovery") or {}, mine.get("restore") or {}
    point = recovery.get("recovery_point")
    label = restored.get("backup_set") or base["label"]
    if point:
        lines.append(f"recovery point: {point} (the last transaction replayed)")
    else:
        lines.append(f"recovery point: the end of backup {label} ({format_time(stop_time(base))}): no archived "
                     "transaction after it was replayed")
    lines.append(f"backup set: {label}; restore {format_duration(float(restored.get('seconds') or 0))}, "
                 f"WAL replay and promotion {format_duration(float(recovery.get('seconds') or 0))}, "
                 f"timeline {recovery.get('timeline', '?')}")
    check = mine.get("check")
    if check and not check.get("ok"):
        lines.append(f"warning: pgbackrest check before the restore: {check.get('message')}")
    schema = mine.get("schema")
    if schema:
        lines.append(f"schema: {schema.get('before')} -> {schema.get('head')} (migrated)" if schema.get("migrated")
                     else f"schema: at the live release's head ({schema.get('head')}), no migration needed")
    lines.append(f"wall time: {format_duration(wall_seconds)} (the app was down for most of it)")
    return lines


# --- the drill --------------------------------------------------------------------------------------------------------


def _iso(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def drill_is_fresh(result: Mapping[str, Any], host_now: float, elapsed: float) -> bool:
    """Whether the drill result was written by the drill this command started `elapsed` seconds ago.

    Compared on the host's own clock (its `now` when the result was read), so the two clocks need not agree.
    """
    started = _iso(result.get("started_at"))
    return started is not None and started.timestamp() >= host_now - elapsed - DRILL_CLOCK_SLACK


def drill_lines(result: Mapping[str, Any]) -> list[str]:
    """The drill's result as `tsdeploy drill` prints it."""
    verdict = "passed" if result.get("passed") else "FAILED"
    lines = [f"drill {verdict}: backup {result.get('backup_label') or '-'}, recovery point "
             f"{result.get('recovery_point') or '-'}"]
    if not result.get("passed"):
        lines.append(f"error: {result.get('error') or 'no reason recorded'}")
    restore_seconds = result.get("restore_seconds")
    lines.append(f"restore {format_duration(restore_seconds) if restore_seconds is not None else '-'} "
                 f"(restore start to promoted), total {format_duration(float(result.get('seconds') or 0))}; "
                 f"finished {result.get('finished_at') or '-'}")
    rows = result.get("rows") or {}
    lines.append(f"tables: {result.get('tables', len(rows))}, rows: {sum(rows.values()):,} in all")
    lines += [f"  {name}: {count:,}" for name, count in sorted(rows.items())]
    expected, valid = result.get("indexes_expected"), result.get("indexes_valid")
    lines.append(f"indexes: {valid if valid is not None else '-'} of {expected if expected is not None else '-'} valid")
    for key, label in (("invalid_indexes", "invalid"), ("missing_indexes", "missing")):
        if result.get(key):
            lines.append(f"  {label}: {', '.join(result[key])}")
    lines.append(f"amcheck: {result.get('amcheck') or '-'}; pgbackrest verify: {result.get('verify') or '-'}")
    return lines


# --- the commands -----------------------------------------------------------------------------------------------------


def _load(inventory: pathlib.Path, vault_password_file: str | None) -> Inventory:
    try:
        return load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None


def _backup_host(loaded: Inventory) -> tuple[str, Mapping[str, Any]]:
    hosts = loaded.hosts_in(Group.BACKUP)
    if not hosts:
        raise click.ClickException(f"the inventory {loaded.path} has no backup host: add one to the `backup` group "
                                   "(it may be the db host) with backup_repo_cipher_pass in the vault, then run "
                                   "tsdeploy deploy")
    return hosts[0], Topology(loaded).service("backup")


def read_stanza(loaded: Inventory, host: str, stanza: str) -> Mapping[str, Any]:
    """pgBackRest's info of `stanza`, read on the backup host (BackupInfo, read-only)."""
    from tsdeploy.deployment import read_fact

    fact = read_fact(loaded, INFO_FACT, (f"stanza={stanza}",), (host,)).get(host)
    if not fact:
        raise click.ClickException(f"could not read pgBackRest's info on {host} (unreachable? see pyinfra's "
                                   "messages above)")
    if fact.get("error"):
        raise click.ClickException(f"{host}: {fact['error']}; fix: deploy the backup host, then check "
                                   f"`sudo -u postgres pgbackrest --stanza={stanza} info` there")
    try:
        return stanza_of(fact["stanzas"], stanza)
    except Refused as error:
        raise click.ClickException(f"{host}: {error}") from None


def _run_unit(loaded: Inventory, host: str, unit: str, what: str) -> None:
    from roles.backup.restore import UNIT_ENV
    from tsdeploy.deployment import run

    run(loaded, (host,), deploy_file=RUN_FILE, extra_env={UNIT_ENV: unit}, what=what)


_INVENTORY = click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
_VAULT = click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
                      envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
                      help="The ansible-vault password file (default: the inventory's ansible.cfg).")


@click.command("backup")
@_INVENTORY
@click.option("--type", "kind", type=click.Choice(TYPES), default="full", show_default=True,
              help="full: everything; diff: what changed since the last full; incr: since the last backup.")
@_VAULT
def backup(inventory: pathlib.Path, kind: str, vault_password_file: str | None) -> None:
    """Take a backup of INVENTORY's database now, with the unit its timer starts, and print it."""
    loaded = _load(inventory, vault_password_file)
    host, ctx = _backup_host(loaded)
    before = {item["label"] for item in backups(read_stanza(loaded, host, ctx["stanza"]))}
    unit = ctx["backup_unit"].format(type=kind)
    click.echo(f"==> {host}: systemctl start {unit} (waits until the backup has finished)", err=True)
    started = time.monotonic()
    _run_unit(loaded, host, unit, f"the {kind} backup on {host}")
    fresh = new_backups(before, read_stanza(loaded, host, ctx["stanza"]))
    if not fresh:
        raise click.ClickException(f"{unit} succeeded on {host} but the repository shows no new backup; see "
                                   f"`journalctl -u {unit}` there")
    click.echo(f"==> done in {format_duration(time.monotonic() - started)}", err=True)
    for item in fresh:
        click.echo(backup_line(item, ctx["stanza"], host))


@click.command("backups")
@_INVENTORY
@click.option("--json", "as_json", is_flag=True, help="Print pgBackRest's info document of the stanza as JSON.")
@_VAULT
def backups_command(inventory: pathlib.Path, as_json: bool, vault_password_file: str | None) -> None:
    """List the backups and the WAL archive of INVENTORY's repository (read-only)."""
    loaded = _load(inventory, vault_password_file)
    host, ctx = _backup_host(loaded)
    stanza = read_stanza(loaded, host, ctx["stanza"])
    if as_json:
        click.echo(json.dumps(stanza, indent=2))
        return
    for line in backups_report(stanza):
        click.echo(line)


@click.command("restore")
@_INVENTORY
@click.option("--to", "to", metavar="TIME",
              help=f"Restore the database as it was at TIME: {TIME_FORMATS}.")
@click.option("--latest", is_flag=True, help="Restore everything the WAL archive holds (e.g. on a rebuilt db host).")
@click.option("--yes", is_flag=True, help="Do it; without it the plan and what it loses are printed, nothing changes.")
@_VAULT
def restore(inventory: pathlib.Path, to: str | None, latest: bool, yes: bool, vault_password_file: str | None) -> None:
    """Restore INVENTORY's database in place to TIME (--to) or to the newest archived state (--latest).

    Stops the app tier, restores the db host's data directory with pgBackRest (only the files that differ),
    replays the archived WAL to the target, promotes, migrates only if the restored schema is behind the live
    release, and starts the app tier again. Every write after the target is lost; the app is down meanwhile.
    Without --yes, prints the plan and exits 1 without touching anything.
    """
    if bool(to) == latest:
        raise click.UsageError("give exactly one of --to TIME and --latest")
    try:
        target = parse_time(to) if to else None
    except Refused as error:
        raise click.BadParameter(str(error), param_hint="--to") from None
    loaded = _load(inventory, vault_password_file)
    host, ctx = _backup_host(loaded)
    db_hosts, app_hosts = loaded.hosts_in(Group.DB), loaded.hosts_in(Group.APP)
    if not db_hosts:
        raise click.ClickException(f"the inventory {inventory} has no db host to restore")
    stanza = read_stanza(loaded, host, ctx["stanza"])
    now = datetime.datetime.now(UTC)
    try:
        base = check_target(target, now, stanza) if target is not None else base_backup(stanza, None)
    except Refused as error:
        raise click.ClickException(f"restore refused: {error}") from None
    topology = Topology(loaded)
    postgres = topology.service("postgres")
    lines = plan_lines(inventory=str(inventory), db_host=db_hosts[0], pg_service=postgres["service"],
                       app_hosts=app_hosts, target=target, now=now, base=base, stanza=ctx["stanza"],
                       archive_timeout=int(topology.vars_of(db_hosts[0])["backup_archive_timeout"]))
    if (stanza.get("status") or {}).get("code", 0) != 0:
        lines.append(f"warning: {status_line(stanza)}")
    for line in lines:
        click.echo(line)
    if not yes:
        raise click.ClickException("not confirmed: nothing was changed; run the same command with --yes to restore")
    _restore(loaded, target, base, ctx["stanza"], db_hosts[0], app_hosts)


def _restore(loaded: Inventory, target: datetime.datetime | None, base: Mapping[str, Any], stanza: str, db_host: str,
             app_hosts: Sequence[str]) -> None:
    from roles.backup.restore import LATEST, TIME, Plan
    from tsdeploy.deployment import read_fact, run

    plan = Plan(run=uuid.uuid4().hex[:12], type=TIME if target is not None else LATEST,
                target=pg_target(target) if target is not None else None, stanza=stanza,
                first_app=app_hosts[0] if app_hosts else None)
    hosts = tuple(dict.fromkeys([db_host, *app_hosts]))
    click.echo(f"==> restoring {db_host} {plan.what}; the app tier stops meanwhile", err=True)
    started = time.monotonic()
    run(loaded, hosts, deploy_file=RESTORE_FILE, extra_env=plan.to_env(), what=f"the restore {plan.what}")
    wall = time.monotonic() - started
    found = read_fact(loaded, RESULTS_FACT, limit=tuple(dict.fromkeys([db_host, *app_hosts[:1]])))
    results: dict[str, Any] = {}
    for name in (db_host, *app_hosts[:1]):
        results.update(found.get(name) or {})
    click.echo(f"==> {db_host} restored {plan.what}", err=True)
    for line in restore_report(results, plan.run, base, wall):
        click.echo(line)


@click.command("drill")
@_INVENTORY
@_VAULT
def drill(inventory: pathlib.Path, vault_password_file: str | None) -> None:
    """Run the restore drill now on INVENTORY's backup host and print its result (exit 1 if it failed).

    The drill (also run by its weekly timer) restores the newest backup into a scratch cluster on the
    backup host, checks every table and index of the app's database and the repository's checksums, and
    removes the scratch cluster. The live database is not touched.
    """
    from tsdeploy.deployment import DeployFailed, read_fact

    loaded = _load(inventory, vault_password_file)
    host, ctx = _backup_host(loaded)
    click.echo(f"==> {host}: systemctl start {ctx['drill_unit']} (waits until the drill has finished)", err=True)
    started = time.monotonic()
    failure: DeployFailed | None = None
    try:
        _run_unit(loaded, host, ctx["drill_unit"], f"the restore drill on {host}")
    except DeployFailed as error:
        failure = error
    fact = read_fact(loaded, DRILL_FACT, (f"path={ctx['drill_result']}",), (host,)).get(host) or {}
    result = fact.get("data")
    if not isinstance(result, Mapping) or not drill_is_fresh(result, float(fact.get("now") or 0),
                                                             time.monotonic() - started):
        if failure is not None:
            raise failure
        raise click.ClickException(f"{ctx['drill_unit']} finished on {host} but {ctx['drill_result']} holds no result "
                                   f"of this run ({fact.get('error') or 'missing or older'}); see "
                                   f"`journalctl -u {ctx['drill_unit']}` there")
    for line in drill_lines(result):
        click.echo(line)
    if not result.get("passed"):
        raise click.ClickException(f"the restore drill on {host} failed: {result.get('error') or 'no reason recorded'}")
