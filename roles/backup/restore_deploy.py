"""pyinfra entry point of `tsdeploy restore`: replace the live database with its state at a time, in place.

    tsdeploy restore inventories/lab --to "2026-12-01 10:00:00+00:00" --yes   (runs it on the db and app hosts)

TSDEPLOY_RESTORE holds the plan (roles.backup.restore.Plan as JSON). The steps are described in
roles/backup/restore.py. pyinfra orders the operations of different hosts by their depth and source line,
not by the order of these lines, so a barrier every host shares separates the steps that must follow another
host's: the app stops only once WAL is archived, PostgreSQL is replaced only once the app has stopped, and
so on.
"""

from pyinfra import host

from roles.backup import restore
from roles.registry import role
from roles.runtime import converged, start_run

start_run()

plan = restore.Plan.from_env()
is_db, is_app = role("postgres").runs_on(host.groups), role("app").runs_on(host.groups)

if is_db and plan.type == restore.TIME:
    restore.check_archiving(plan, fatal=True)
converged(name="Wait until the WAL up to now is archived")
if is_app:
    restore.stop_app()
converged(name="Wait until every app host has stopped")
if is_db:
    restore.restore_database(plan)
converged(name="Wait until PostgreSQL is restored and promoted")
if host.name == plan.first_app:
    restore.migrate_if_behind(plan)
converged(name="Wait until the schema is the live release's")
if is_app:
    restore.start_app()
