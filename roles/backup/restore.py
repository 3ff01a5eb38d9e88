"""The steps `tsdeploy restore` and `tsdeploy backup`/`drill` run on hosts, as shell scripts built here.

A restore replaces the live database in place with its state at a time (or the newest archived state), in
one pyinfra run of roles/backup/restore_deploy.py on the db host and the app hosts:

1. db host, `--to TIME` only: `pgbackrest check`, which switches the WAL file and waits until it is
   archived. Without it, the writes just before TIME may still sit in an unarchived WAL file and recovery
   stops short ("recovery ended before configured recovery target was reached"). A failure stops the
   restore before anything was stopped.
2. app hosts: Gunicorn and the view-count flush timer stop, so nothing writes any more.
3. db host: (`--latest` only: `pgbackrest check` now, so that every write up to the app's stop is archived;
   a failure is only a warning, since a rebuilt db host holds another cluster whose WAL cannot be archived
   into this stanza), PostgreSQL stops, `pgbackrest restore --delta` rewrites the data directory (only the
   files that differ), PostgreSQL starts, replays the archived WAL up to the target and promotes itself;
   the step waits until `pg_is_in_recovery()` is false.
4. first app host: the live release's migrations run only if the restored schema is not at its head (a
   restore to before a deploy's migration brings back the older schema).
5. app hosts: Gunicorn and the timer start; each host must answer /health/ready with its live release.

Each step records what it found in /var/lib/tsdeploy/restore (facts.RESTORE_RESULT_DIR: JSON, one file per step,
with the restore's run id) for the command's report: pyinfra does not keep a successful operation's output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation

from roles.app import manifest as app_manifest
from roles.app.commands import as_app
from roles.app.roll import READY_STREAK, WAIT_READY
from roles.backup.facts import RESTORE_RESULT_DIR
from roles.runtime import host_context

#: The environment variable through which `tsdeploy restore` hands the plan (JSON) to the entry file.
PLAN_ENV = "TSDEPLOY_RESTORE"
#: The environment variable naming the unit `tsdeploy backup`/`drill` starts (roles/backup/run_deploy.py).
UNIT_ENV = "TSDEPLOY_BACKUP_UNIT"
TIME, LATEST = "time", "default"
#: How long PostgreSQL may take to replay the archived WAL and promote itself after the restore.
RECOVERY_TIMEOUT = 4 * 3600
#: The app's units the restore stops and starts again: nothing may write while the database is replaced.
APP_UNITS = (app_manifest.FLUSH_TIMER, *(unit for unit in app_manifest.FLUSH_UNITS if unit != app_manifest.FLUSH_TIMER),
             app_manifest.SERVICE)

#: Exits 0 when the database's Alembic revision is the release's head, 3 when it differs; prints both.
SCHEMA_AT_HEAD = """import os, sys
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from talentsphere.config import normalize_database_url
from talentsphere.migrate import alembic_config
url = os.environ["DATABASE_URL"]
head = sorted(ScriptDirectory.from_config(alembic_config(url)).get_heads())
engine = create_engine(normalize_database_url(url), poolclass=pool.NullPool, connect_args={"connect_timeout": 10})
with engine.connect() as connection:
    current = sorted(MigrationContext.configure(connection).get_current_heads())
engine.dispose()
print(f"{','.join(current) or 'none'} {','.join(head)}")
sys.exit(0 if current == head else 3)
"""

#: Shell helpers every script starts with: fail with a message; write a result file; quote a JSON string.
_PRELUDE = """set -u
fail() { echo "$*" >&2; exit 1; }
json_str() { printf '"%s"' "$(printf '%s' "$1" | tr '\\n\\t\\r' '   ' | tr -d '\\000-\\037' | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')"; }
record() { install -d -m 0755 "$results" && printf '%s\\n' "$2" > "$results/$1.json.new" && mv -f "$results/$1.json.new" "$results/$1.json"; }
seconds_since() { local ns=$(( $(date +%s%N) - $1 )); printf '%d.%03d' $((ns / 1000000000)) $((ns / 1000000 % 1000)); }
"""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `tsdeploy restore` asked for: the target, the stanza, and which app host migrates."""

    run: str
    type: str  # TIME or LATEST
    target: str | None  # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" (UTC) for TIME, None for LATEST
    stanza: str
    first_app: str | None

    def to_env(self) -> dict[str, str]:
        return {PLAN_ENV: json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Plan:
        return cls(**json.loads((os.environ if environ is None else environ)[PLAN_ENV]))

    @property
    def what(self) -> str:
        """The target in words, for operation names and messages."""
        return f"to {self.target}" if self.type == TIME else "to the newest archived WAL"


def _q(text: str) -> str:
    return shlex.quote(text)


def _as_postgres(*words: str) -> str:
    return "runuser -u postgres -- " + shlex.join(words)


def _start(plan: Plan, results: str) -> str:
    """The prelude and the variables every step's script uses."""
    return _PRELUDE + f"run={_q(plan.run)}\nresults={_q(results)}\n"


def check_script(plan: Plan, postgres: dict[str, Any], host: str, *, fatal: bool,
                 results: str = RESTORE_RESULT_DIR) -> str:
    """Step 1 (or the start of 3): archive every WAL up to now, if PostgreSQL runs; record check.json."""
    check = _as_postgres("pgbackrest", f"--stanza={plan.stanza}", "check")
    stopped = "PostgreSQL was not running: WAL it had not archived is not in the repository"
    failed = (f"{host}: pgbackrest check failed (above), so WAL written before the target may not be archived and "
              "recovery could stop short of it; nothing was stopped or changed. Fix archiving (tsdeploy verify "
              "INVENTORY: ts-backup-01), then run the restore again")
    return _start(plan, results) + f"""
if ! systemctl is-active --quiet {_q(postgres['service'])}; then
  record check "$(printf '{{"run": %s, "ok": false, "message": %s}}' "$(json_str "$run")" "$(json_str {_q(stopped)})")"
  exit 0
fi
if out=$({check} 2>&1); then
  record check "$(printf '{{"run": %s, "ok": true, "message": "every WAL up to now is archived"}}' "$(json_str "$run")")"
  exit 0
fi
echo "$out" >&2
reason=$(printf '%s\\n' "$out" | grep -E 'ERROR|WARN' | tail -n 2)
record check "$(printf '{{"run": %s, "ok": false, "message": %s}}' "$(json_str "$run")" "$(json_str "${{reason:-$out}}")")"
{f"fail {_q(failed)}" if fatal else "exit 0"}
"""


def stop_app_script() -> str:
    """Step 2: stop the timer first (it would start its service again), then the flush service and Gunicorn."""
    return f"set -eu\nsystemctl stop {' '.join(_q(unit) for unit in APP_UNITS)}\n"


def stop_postgres_script(postgres: dict[str, Any], host: str) -> str:
    """Step 3a: stop PostgreSQL (a fast shutdown: the app is stopped, nothing is lost that matters)."""
    service = _q(postgres["service"])
    return _PRELUDE + f"""
systemctl stop {service} || fail {_q(f"{host}: systemctl stop {postgres['service']} failed")}
if systemctl is-active --quiet {service}; then fail {_q(f"{host}: {postgres['service']} still runs after stop")}; fi
"""


def restore_command(plan: Plan) -> list[str]:
    """The pgBackRest restore, as postgres: in place (--delta rewrites only the files that differ).

    >>> restore_command(Plan("r", "time", "2026-12-01 10:00:00+00:00", "ts", None))[-4:]
    ['--type=time', '--target=2026-12-01 10:00:00+00:00', '--target-action=promote', 'restore']
    >>> restore_command(Plan("r", "default", None, "ts", None))[-2:]
    ['--type=default', 'restore']
    """
    command = ["pgbackrest", f"--stanza={plan.stanza}", "--delta", "--log-level-console=info"]
    if plan.type == TIME:
        command += ["--type=time", f"--target={plan.target}", "--target-action=promote"]
    else:
        command += ["--type=default"]
    return command + ["restore"]


def restore_script(plan: Plan, host: str, results: str = RESTORE_RESULT_DIR) -> str:
    """Step 3b: rewrite the data directory from the repository; record restore.json (backup set, seconds)."""
    failed = (f"{host}: pgbackrest restore failed (above); PostgreSQL is stopped and its data directory may be half "
              "restored, the app is stopped: fix the cause and run the restore again")
    return _start(plan, results) + f"""
started=$(date +%s%N)
if ! out=$({_as_postgres(*restore_command(plan))} 2>&1); then
  echo "$out" >&2
  fail {_q(failed)}
fi
seconds=$(seconds_since "$started")
label=$(printf '%s\\n' "$out" | sed -n 's/.*restore backup set \\([0-9A-Za-z_-]*\\).*/\\1/p' | head -n 1)
record restore "$(printf '{{"run": %s, "backup_set": %s, "seconds": %s}}' "$(json_str "$run")" "$(json_str "$label")" "$seconds")"
"""


def recover_script(plan: Plan, postgres: dict[str, Any], host: str, results: str = RESTORE_RESULT_DIR,
                   timeout: int = RECOVERY_TIMEOUT) -> str:
    """Step 3c: start PostgreSQL, wait until it has replayed the WAL and promoted itself; record recovery.json."""
    service, log = _q(postgres["service"]), f"/var/log/postgresql/postgresql-{postgres['version']}-main.log"
    query = _as_postgres("psql", "-X", "-A", "-t", "-q", "-p", str(postgres["port"]), "-d", "postgres", "-c")
    stopped = (f"{host}: PostgreSQL stopped during recovery (its log above): a target after the newest archived WAL, "
               "or WAL missing from the archive, stops it. The data directory holds the restored backup; the app is "
               "stopped: run the restore again with another --to, or with --latest")
    slow = (f"{host}: PostgreSQL still replays WAL after {timeout} s (it goes on: watch {log}); the app is stopped: "
            "start it with tsdeploy deploy once PostgreSQL accepts writes")
    point = ("SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')")
    return _start(plan, results) + f"""
started=$(date +%s%N)
systemctl start {service} || true
deadline=$(( $(date +%s) + {int(timeout)} ))
while :; do
  state=$({query} 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
  [ "$state" = f ] && break
  if ! systemctl is-active --quiet {service}; then
    tail -n 15 {_q(log)} >&2
    fail {_q(stopped)}
  fi
  [ "$(date +%s)" -lt "$deadline" ] || fail {_q(slow)}
  sleep 1
done
seconds=$(seconds_since "$started")
point=$({query} {_q(point)})
timeline=$({query} 'SELECT timeline_id FROM pg_control_checkpoint()')
record recovery "$(printf '{{"run": %s, "recovery_point": %s, "timeline": %s, "seconds": %s}}' "$(json_str "$run")" "$(json_str "$point")" "$(json_str "$timeline")" "$seconds")"
"""


def migrate_script(plan: Plan, app: dict[str, Any], host: str, results: str = RESTORE_RESULT_DIR) -> str:
    """Step 4: migrate with the live release only if the restored schema is not at its head; record schema.json."""
    python, cli = f"{app['current_dir']}/bin/python", f"{app['current_dir']}/bin/talentsphere"
    timeouts = {"MIGRATION_LOCK_TIMEOUT": app["migration_lock_timeout"],
                "MIGRATION_STATEMENT_TIMEOUT": app["migration_statement_timeout"]}
    failed = (f"{host}: talentsphere migrate failed (above) on the restored database; PostgreSQL runs, the app is "
              "stopped: fix the cause, then run tsdeploy deploy")
    unread = f"{host}: could not read the restored database's schema revision (above); the app is stopped"
    return _start(plan, results) + f"""
out=$({as_app(app, python, "-c", SCHEMA_AT_HEAD)} 2>&1); rc=$?
revisions=$(printf '%s\\n' "$out" | tail -n 1)
before=${{revisions% *}}; head=${{revisions#* }}
case $rc in
  0) migrated=false ;;
  3) {as_app(app, cli, "migrate", env=timeouts, owner=True)} || fail {_q(failed)}
     migrated=true ;;
  *) echo "$out" >&2
     fail {_q(unread)} ;;
esac
record schema "$(printf '{{"run": %s, "before": %s, "head": %s, "migrated": %s}}' "$(json_str "$run")" "$(json_str "$before")" "$(json_str "$head")" "$migrated")"
"""


def start_app_script(app: dict[str, Any], host: str) -> str:
    """Step 5: start Gunicorn and the flush timer; wait until /health/ready serves the live release."""
    current = _q(app["current_dir"])
    service = app_manifest.SERVICE
    return _PRELUDE + f"""
release=$(basename "$(readlink -f {current})")
# A start right after a stop can fail once on a cgroup the kernel has not released yet (status 219/CGROUP, seen
# on container hosts); the unit is fine: try again before giving up.
for attempt in 1 2 3; do
  systemctl start {_q(service)} && break
  [ "$attempt" = 3 ] && fail {_q(f"{host}: {service} did not start (journalctl -u {service})")}
  sleep 2
done
systemctl start {_q(app_manifest.FLUSH_TIMER)}
python3 -c {_q(WAIT_READY)} {_q(app['ready_url'])} {int(app['ready_timeout'])} "$release" {READY_STREAK} || fail {_q(f"{host}: the app did not get ready on the restored database (above)")}
"""


def run_unit_script(unit: str) -> str:
    """`systemctl start UNIT` (a oneshot: returns when it has finished); on failure, its journal of this run.

    The unit the timer starts, so that a manual run is logged, locked and reported like a scheduled one.
    """
    return _PRELUDE + f"""
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start {_q(unit)} && exit 0
echo {_q(f"{unit} failed; its journal of this run:")} >&2
journalctl -u {_q(unit)} --since "$since" --no-pager -o cat -n 40 >&2
exit 1
"""


def _bash(script: str) -> StringCommand:
    return StringCommand("bash", "-c", _q(script))


@operation(is_idempotent=False)
def run_script(script: str):
    """Run one of this module's scripts (as root).

    + script: the bash script (built by one of the *_script functions above)

    Updates: always runs: each script is one step of a restore or a manual backup/drill.
    """
    yield _bash(script)


# --- the steps as pyinfra deploys, called by roles/backup/restore_deploy.py -------------------------------------------


@deploy("Archive every WAL up to now before the restore")
def check_archiving(plan: Plan, fatal: bool) -> None:
    ctx = host_context()
    run_script(name=("Archive every WAL up to now (pgbackrest check)" if fatal else
                     "Archive every WAL up to now if this cluster can (pgbackrest check; a failure is a warning)"),
               script=check_script(plan, ctx["postgres"], host.name, fatal=fatal))


@deploy("Stop the app tier for the restore")
def stop_app() -> None:
    run_script(name=f"Stop {', '.join(APP_UNITS)} so that nothing writes during the restore", script=stop_app_script())


@deploy("Restore PostgreSQL in place")
def restore_database(plan: Plan) -> None:
    ctx = host_context()
    postgres = ctx["postgres"]
    if plan.type == LATEST:
        run_script(name="Archive every WAL up to the app's stop if this cluster can "
                        "(pgbackrest check; a failure is a warning)",
                   script=check_script(plan, postgres, host.name, fatal=False))
    run_script(name=f"Stop {postgres['service']}", script=stop_postgres_script(postgres, host.name))
    run_script(name=f"Restore the data directory {plan.what} (pgbackrest restore --delta, stanza {plan.stanza})",
               script=restore_script(plan, host.name))
    run_script(name=f"Start {postgres['service']} and wait until it has replayed the WAL and promoted itself",
               script=recover_script(plan, postgres, host.name))


@deploy("Migrate the restored database if its schema is behind the live release")
def migrate_if_behind(plan: Plan) -> None:
    ctx = host_context()
    run_script(name="Run the live release's migrations if the restored schema is not at its head",
               script=migrate_script(plan, ctx["app"], host.name))


@deploy("Start the app tier on the restored database")
def start_app() -> None:
    ctx = host_context()
    run_script(name="Start Gunicorn and the flush timer; wait until /health/ready serves the live release",
               script=start_app_script(ctx["app"], host.name))


@deploy("Run a backup unit")
def run_unit(unit: str) -> None:
    run_script(name=f"Start {unit} and wait until it has finished", script=run_unit_script(unit))
