"""The app role's first phase on every app host: stage the configuration, check the release, migrate once.

Nothing here changes what an app host serves: the release is installed beside the live one, changed
config files are staged as candidates, the release is checked with them (`gunicorn --check-config` imports
the app), and the database is migrated once, before any host switches (so the previous release runs against
the new schema for a while: migrations must be expand/contract, app/README.md). A failure in any of these
stops the whole deploy (pyinfra's fail percent is 0) with every host still on its previous release.

While pyinfra prepares the operations, the host's live state (`AppLive`) is compared with what the deploy
wants; the resulting activation plan is written for `tsdeploy deploy`, which activates the hosts one by one
afterwards (roles/app/roll.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
from typing import Any

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import server

from roles.app import configure, manifest
from roles.app.commands import as_app, seeded_jobs
from roles.app.live import NONE, AppLive, Plan, decide, sha256
from roles.app.release import prune_releases, release_dir
from roles.app.roll import CANDIDATE, check_command
from tsdeploy.rolespec import Context

#: Where `tsdeploy deploy` wants the activation plans written (JSON: host -> Plan).
PLAN_ENV = "TSDEPLOY_PLAN"
#: Written into a release once its migrations, then its indexes, are applied (a killed deploy redoes them).
MIGRATED_MARKER = ".tsdeploy-migrated"
OPTIMIZED_MARKER = ".tsdeploy-optimized"

_plans: dict[str, Any] = {}


def _record(plan: Plan) -> None:
    path = os.environ.get(PLAN_ENV)
    if not path:
        return
    _plans[plan.host] = plan.as_json()
    pathlib.Path(path).write_text(json.dumps(_plans))


def plan_for(ctx: Context, release_id: str, requirements: str) -> Plan:
    """Compare the host's live state with the wanted files and release (read while operations are prepared)."""
    app = ctx["app"]
    contents = configure.wanted(ctx)
    live = host.get_fact(AppLive, current=app["current_dir"], files=list(contents), service=manifest.SERVICE,
                         ready_url=app["ready_url"])
    return decide(host.name, live, {path: sha256(text) for path, text in contents.items()}, release_id,
                  requirements, service_unit=manifest.UNITS[0].dest(ctx), env_file=app["env_file"],
                  gunicorn_conf=app["gunicorn_conf"], preload=app["preload"])


def _staged(app: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The app context with the env files the release runs with once activated (the candidates if staged)."""
    return {**app, **{key: app[key] + (CANDIDATE if app[key] in plan.changed_files else "")
                      for key in ("env_file", "owner_env_file")}}


def apply(ctx: Context, release_id: str, requirements: str) -> Plan:
    """Decide the host's activation, stage its changed files and check the release with them (no database)."""
    app = ctx["app"]
    plan = plan_for(ctx, release_id, requirements)
    _record(plan)
    configure.stage(ctx, plan.changed_files)
    if plan.action != NONE:
        server.shell(name=f"Check release {release_id} with the configuration it will run with "
                          "(gunicorn --check-config imports the app)",
                     commands=[check_command(app, release_id, set(plan.changed_files))])
    return plan


def with_database(ctx: Context, release_id: str, plan: Plan) -> None:
    """Migrate once, create the indexes once, seed an empty lab database, prune old releases.

    Runs after every host's roles converged (deploy.py's barrier): the database and its app role must exist.
    """
    app = ctx["app"]
    target = release_dir(app["releases_dir"], release_id)
    runs_with = _staged(app, plan)
    timeouts = {"MIGRATION_LOCK_TIMEOUT": app["migration_lock_timeout"],
                "MIGRATION_STATEMENT_TIMEOUT": app["migration_statement_timeout"]}
    _once(target, MIGRATED_MARKER, f"Migrate the database for release {release_id} (once, before any host "
          f"switches; lock_timeout {timeouts['MIGRATION_LOCK_TIMEOUT']})",
          as_app(runs_with, f"{target}/bin/talentsphere", "migrate", env=timeouts, owner=True))
    _once(target, OPTIMIZED_MARKER, "Create the search indexes and refresh statistics (talentsphere optimize-db)",
          as_app(runs_with, f"{target}/bin/talentsphere", "optimize-db", owner=True))
    _seed(runs_with, target)
    prune_releases(name=f"Keep the newest {app['releases_keep']} releases", releases_dir=app["releases_dir"],
                   artifacts_dir=app["artifacts_dir"], current=app["current_dir"], keep=app["releases_keep"],
                   new_release=release_id)


def _once(target: str, marker: str, name: str, command: str) -> None:
    """Run `command` on one app host unless this host's copy of the release records it as done.

    Each app host then records it, so that whichever host is first in a later (or --limit'ed) deploy knows;
    a deploy killed before the record runs it again (migrations and optimize-db are idempotent).
    """
    if host.get_fact(File, path=f"{target}/{marker}"):
        return
    server.shell(name=name, commands=[command], _run_once=True)
    server.shell(name=f"Record in {target} that this step is done ({marker})",
                 commands=[f"touch {shlex.quote(f'{target}/{marker}')}"])


def _seed(app: dict[str, Any], target: str) -> None:
    """Seed demo jobs once, only while the jobs table is empty (the lab sets app_seed_jobs)."""
    if app["seed_jobs"] <= 0:
        return
    count = seeded_jobs(app, target)
    if count not in (None, 0):
        return
    server.shell(name=f"Seed {app['seed_jobs']} jobs because the jobs table is empty",
                 commands=[as_app(app, f"{target}/bin/talentsphere", "seed", "--jobs", str(app["seed_jobs"]),
                                  "--seed", str(app["seed"]), owner=True)],
                 _run_once=True)
