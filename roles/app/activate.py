"""Activate a release: validate it, migrate, switch `current`, index, seed, then start or HUP Gunicorn.

A release that fails `gunicorn --check-config` (which imports the app) or its migrations stops the deploy
before the switch, so the previous release keeps serving.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import server, systemd

from roles.app import manifest
from roles.app.commands import as_app, seeded_jobs
from roles.app.configure import Configured
from roles.app.release import AppReleases, prune_releases, release_dir, switch_current

#: Polls a URL until it answers 200 or the deadline passes (runs with the host's python3, no curl needed).
_WAIT_READY = """import sys, time, urllib.request
url, deadline, last = sys.argv[1], time.time() + float(sys.argv[2]), None
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            sys.exit(print(url, response.status, response.read().decode()))
    except Exception as error:
        last = error
    time.sleep(1)
sys.exit(f"{url} did not answer 200 within {sys.argv[2]} s: {last}")
"""


def apply(ctx: dict[str, Any], release_id: str, configured: Configured) -> None:
    app = ctx["app"]
    target = release_dir(app["releases_dir"], release_id)
    live = host.get_fact(AppReleases, releases_dir=app["releases_dir"], current=app["current_dir"])["current"]
    switching = live != target
    # A release about to go live is always validated; the live one again only when its config changed.
    validate_when = {} if switching else {"_if": lambda: configured.gunicorn.did_change() or configured.env.did_change()}
    server.shell(name=f"Check release {release_id}: Gunicorn config and app import (gunicorn --check-config)",
                 commands=[as_app(app, f"{target}/bin/python", "-m", "gunicorn", "--check-config",
                                  "--config", app["gunicorn_conf"])],
                 **validate_when)
    if switching:
        server.shell(name=f"Migrate the database to release {release_id} (once per deploy, before the switch)",
                     commands=[as_app(app, f"{target}/bin/talentsphere", "migrate")], _run_once=True)
    switched = switch_current(name=f"Switch {app['current_dir']} to release {release_id}",
                              current=app["current_dir"], target=target)
    if switching:
        server.shell(name="Create the search indexes and refresh statistics (talentsphere optimize-db)",
                     commands=[as_app(app, f"{target}/bin/talentsphere", "optimize-db")], _run_once=True)
    _seed(app)
    _serve(app, configured, switched)
    prune_releases(name=f"Keep the newest {app['releases_keep']} releases", releases_dir=app["releases_dir"],
                   artifacts_dir=app["artifacts_dir"], current=app["current_dir"], keep=app["releases_keep"],
                   new_release=release_id)


def _seed(app: dict[str, Any]) -> None:
    """Seed demo jobs once, only while the jobs table is empty (the lab sets app_seed_jobs)."""
    if app["seed_jobs"] <= 0:
        return
    count = seeded_jobs(app)
    if count not in (None, 0):
        return
    server.shell(name=f"Seed {app['seed_jobs']} jobs because the jobs table is empty",
                 commands=[as_app(app, f"{app['current_dir']}/bin/talentsphere", "seed", "--jobs",
                                  str(app["seed_jobs"]), "--seed", str(app["seed"]))],
                 _run_once=True)


def _serve(app: dict[str, Any], configured: Configured, switched: OperationMeta) -> None:
    """Start Gunicorn, else restart (unit/env changed) or HUP (new code/config); then wait until ready."""
    unit = configured.units[0]
    started = systemd.service(name=f"Start and enable {manifest.SERVICE}", service=manifest.SERVICE,
                              running=True, enabled=True)
    restarted = systemd.service(
        name="Restart talentsphere because its unit or environment changed", service=manifest.SERVICE,
        restarted=True, _if=lambda: (unit.did_change() or configured.env.did_change()) and not started.did_change(),
    )
    reloaded = systemd.service(
        name="Reload Gunicorn (HUP) for the new release or gunicorn.conf.py", service=manifest.SERVICE,
        reloaded=True,
        _if=lambda: ((switched.did_change() or configured.gunicorn.did_change())
                     and not started.did_change() and not restarted.did_change()),
    )
    systemd.service(name="Start and enable the view-count flush timer (every minute)",
                    service=manifest.FLUSH_TIMER, running=True, enabled=True)
    server.shell(
        name=f"Wait until {app['ready_url']} answers 200",
        commands=[wait_ready_command(app)],
        _if=lambda: started.did_change() or restarted.did_change() or reloaded.did_change(),
    )


def wait_ready_command(app: dict[str, Any]) -> str:
    """The shell command that polls the host's /health/ready until 200 or app_ready_timeout seconds."""
    return f"python3 -c {shlex.quote(_WAIT_READY)} {shlex.quote(app['ready_url'])} {app['ready_timeout']}"
