"""Activate the target release on ONE app host, while the lb keeps it out of rotation, or put it back as it was.

Run by `tsdeploy deploy` after its first phase (which installed the release, staged the changed config files
as candidates next to the live ones, checked them and migrated), one host or batch at a time, through
`roles/app/roll_deploy.py`. One operation, one script on the host, so that a deploy killed half-way leaves
either the old state or the new one behind, and the next deploy sees which from what runs:

1. check the target release with the files it will run with (`gunicorn --check-config` imports the app);
2. keep a copy of each live file the candidates replace, then move the candidates in (atomic renames);
3. switch `current` to the target release, then start, restart or HUP Gunicorn as the plan says;
4. wait until /health/ready answers 200 naming the target release several times in a row (every worker
   that answers serves the new code);
5. if it does not get ready: put the files and `current` back, restart Gunicorn on the previous release,
   wait until it is ready again, and fail, naming the host, the release and the last answer.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import StringCommand, deploy, operation

from roles.app import ROLE, manifest
from roles.app.commands import as_app
from roles.app.live import RELOAD, RESTART, START, Plan
from roles.app.release import LIVE_MARKER, release_dir
from roles.runtime import host_context

#: Suffixes of the files next to a live config file: the staged replacement and the copy kept for a revert.
CANDIDATE = ".tsdeploy-candidate"
PREVIOUS = ".tsdeploy-previous"
#: Consecutive answers naming the target release before a host counts as ready on it.
READY_STREAK = 3
#: The last line of a failed activation says whether the host serves its previous release again.
REVERTED, NOT_REVERTED = "tsdeploy: reverted", "tsdeploy: not reverted"

#: Polls /health/ready until `streak` answers in a row are 200 and name `release`, or the deadline passes.
WAIT_READY = """import json, sys, time, urllib.error, urllib.request
url, deadline, release, streak = sys.argv[1], time.time() + float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
good, last = 0, "no answer"
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
            last = f"200 {json.dumps(body)}"
            good = good + 1 if body.get("release") == release else 0
    except urllib.error.HTTPError as error:
        last, good = f"{error.code} {error.read().decode(errors='replace')[:300]}", 0
    except Exception as error:
        last, good = f"{type(error).__name__}: {error}", 0
    if good >= streak:
        sys.exit(print(f"{url} serves release {release} ({last})"))
    time.sleep(0.5 if good else 1)
sys.exit(f"{url} did not serve release {release} within {sys.argv[2]} s; last answer: {last}")
"""


def wait_ready_command(app: dict[str, Any], release: str) -> str:
    """The shell command that waits until this host's /health/ready serves `release` (app_ready_timeout)."""
    return (f"python3 -c {shlex.quote(WAIT_READY)} {shlex.quote(app['ready_url'])} {app['ready_timeout']} "
            f"{shlex.quote(release)} {READY_STREAK}")


def check_command(app: dict[str, Any], release: str, staged: set[str]) -> str:
    """`gunicorn --check-config` of `release` with the env file and gunicorn.conf.py it will run with."""
    env_file = app["env_file"] + (CANDIDATE if app["env_file"] in staged else "")
    conf = app["gunicorn_conf"] + (CANDIDATE if app["gunicorn_conf"] in staged else "")
    return as_app({**app, "env_file": env_file}, f"{release_dir(app['releases_dir'], release)}/bin/python", "-m",
                  "gunicorn", "--check-config", "--config", conf)


def _switch(app: dict[str, Any], release: str) -> str:
    target = shlex.quote(release_dir(app["releases_dir"], release))
    current = shlex.quote(app["current_dir"])
    return f"ln -sfn {target} {current}.tsdeploy-new && mv -T {current}.tsdeploy-new {current}"


def _went_live(app: dict[str, Any], release: str) -> str:
    """Mark the release as having served (rollback picks the newest such release before the live one)."""
    return f"touch {shlex.quote(release_dir(app['releases_dir'], release))}/{LIVE_MARKER}"


def script(app: dict[str, Any], plan: Plan, host_name: str) -> str:
    """The activation script for one host (see the module docstring); fails with the reason on stderr."""
    q = shlex.quote
    staged = set(plan.changed_files)
    units_changed = any(path.startswith("/etc/systemd/") for path in staged)
    flush_changed = any(path.endswith(tuple(manifest.FLUSH_UNITS)) for path in staged)
    service = q(manifest.SERVICE)
    lines = ["set -u", "fail() { echo \"$*\" >&2; exit 1; }"]
    for path in sorted(staged):
        lines.append(f"[ -f {q(path + CANDIDATE)} ] || fail {q(f'{host_name}: the staged file {path}{CANDIDATE} is missing; run the deploy again (its first phase stages it)')}")
    lines.append(f"{check_command(app, plan.target, staged)} || "
                 f"fail {q(f'{host_name}: release {plan.target} fails gunicorn --check-config with its new configuration; nothing changed on this host')}")
    for path in sorted(staged):
        lines.append(f"if [ -e {q(path)} ]; then cp -a {q(path)} {q(path + PREVIOUS)}; else rm -f {q(path + PREVIOUS)}; fi")
    for path in sorted(staged):
        lines.append(f"mv -f {q(path + CANDIDATE)} {q(path)}")
    if units_changed:
        lines.append("systemctl daemon-reload")
    if plan.previous != plan.target:
        lines.append(_switch(app, plan.target))
    gunicorn = {START: f"systemctl enable --now {service}", RESTART: f"systemctl restart {service}",
                RELOAD: f"systemctl reload {service}"}.get(plan.action)
    timer = q(manifest.FLUSH_TIMER)
    lines.append(f"systemctl enable --quiet --now {timer}" + (f" && systemctl restart {timer}" if flush_changed else ""))
    if gunicorn is None:  # configure: only the flush units changed
        lines.append(f"echo {q(f'{host_name}: configuration applied; Gunicorn untouched')}")
        return "\n".join(lines)
    revert = [f"echo {q(f'{host_name}: not ready on release {plan.target}: putting the previous files and release back')} >&2"]
    for path in sorted(staged):
        revert.append(f"if [ -e {q(path + PREVIOUS)} ]; then mv -f {q(path + PREVIOUS)} {q(path)}; else rm -f {q(path)}; fi")
    if units_changed:
        revert.append("systemctl daemon-reload")
    if plan.previous:
        revert += [_switch(app, plan.previous), f"systemctl restart {service}",
                   f"if {wait_ready_command(app, plan.previous)}; then "
                   f"fail {q(f'{host_name}: release {plan.target} did not get ready (see above); {REVERTED} to release {plan.previous}, which serves again')}; fi"]
    lines += [
        f"{gunicorn} || echo {q(f'{host_name}: {gunicorn} failed')} >&2",
        f"if {wait_ready_command(app, plan.target)}; then",
        f"  {_went_live(app, plan.target)}",
        *(f"  rm -f {q(path + PREVIOUS)}" for path in sorted(staged)),
        "  exit 0",
        "fi",
        *revert,
        f"fail {q(f'{host_name}: release {plan.target} did not get ready and the previous release could not be restored; {NOT_REVERTED}: the host stays out of the lb rotation')}",
    ]
    return "\n".join(lines)


@operation()
def activate(plan: dict[str, Any], app: dict[str, Any], host_name: str):
    """Activate a planned release on this host (see the module docstring), reverting if it does not get ready.

    + plan: the host's Plan as JSON (action, reasons, target, previous, changed_files)
    + app: the host's app context (paths, ready URL and timeout)

    Updates: always runs when called: the deploy calls it only for hosts whose plan has an action.
    """
    yield StringCommand("bash", "-c", shlex.quote(script(app, Plan.from_json(plan), host_name)))


@deploy("TalentSphere app activation", data_defaults=ROLE.defaults)
def roll(plan: Plan) -> None:
    ctx = host_context()
    reasons = "; ".join(plan.reasons)
    activate(name=f"Activate release {plan.target} ({plan.action}: {reasons})", plan=plan.as_json(),
             app=dict(ctx["app"]), host_name=plan.host)
