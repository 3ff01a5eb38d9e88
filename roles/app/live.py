"""What an app host runs now, and what its rolling activation must do to serve the target release.

The deploy converges on what runs, not on what is on disk: besides the files and the `current` link, the
`AppLive` fact asks the host's own /health/ready which release its workers serve. `decide()` turns the
difference into one action:

- ``start``: Gunicorn is not running;
- ``restart``: the unit, the environment file or gunicorn.conf.py changed, or the target release's pinned
  dependencies differ from the live release's (the master keeps the modules it started with; only a new
  master loads new ones);
- ``reload`` (HUP): only the code changed (another release, same dependencies), or the workers serve a
  release other than the target (an interrupted deploy switched `current` but never reloaded); with
  app_preload a restart instead (the master imported the code before forking);
- ``configure``: only the view-count flush units changed (Gunicorn keeps serving);
- ``none``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
from typing import Any

from pyinfra.api import FactBase

#: Polls /health/ready a few times and prints the release each answer names ("-" when it did not answer 200).
_SERVING = """import json, sys, urllib.error, urllib.request
for _ in range(int(sys.argv[2])):
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=3) as response:
            print("serving", json.load(response).get("release") or "-")
    except urllib.error.HTTPError as error:  # not ready (e.g. 503): the body still names the release
        try:
            print("serving", json.load(error).get("release") or "-")
        except Exception:
            print("serving -")
    except Exception:
        print("serving -")
"""

#: Answers of /health/ready the fact collects: several workers answer, each names the code it imported.
SERVING_SAMPLES = 4

START, RESTART, RELOAD, CONFIGURE, NONE = "start", "restart", "reload", "configure", "none"
#: Actions that replace Gunicorn's workers: the host leaves the lb's rotation while they run.
DRAINING_ACTIONS = (START, RESTART, RELOAD)


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class AppLive(FactBase):
    """The live state of an app host.

    .. code:: python

        {"current": "1a2b3c4d5e6f" | None, "active": True, "serving": ["1a2b3c4d5e6f", ...],
         "sums": {"/etc/talentsphere/env": "<sha256>" | None, ...}, "requirements": "<sha256>" | None}
    """

    def command(self, current: str, files: list[str], service: str, ready_url: str) -> str:
        quoted = " ".join(shlex.quote(path) for path in files)
        return (
            f"link=$(readlink {shlex.quote(current)} || true); echo \"current $link\"; "
            f"echo \"active $(systemctl is-active {shlex.quote(service)} 2>/dev/null || true)\"; "
            f"for path in {quoted}; do if [ -f \"$path\" ]; then echo \"sum $(sha256sum < \"$path\" | cut -d' ' -f1) "
            f"$path\"; else echo \"sum - $path\"; fi; done; "
            f"if [ -n \"$link\" ] && [ -f \"$link/requirements.txt\" ]; then "
            f"echo \"requirements $(sha256sum < \"$link/requirements.txt\" | cut -d' ' -f1)\"; "
            f"else echo 'requirements -'; fi; "
            f"if command -v python3 >/dev/null; then python3 -c {shlex.quote(_SERVING)} {shlex.quote(ready_url)} "
            f"{SERVING_SAMPLES}; fi"
        )

    def process(self, output: list[str]) -> dict[str, Any]:
        state: dict[str, Any] = {"current": None, "active": False, "serving": [], "sums": {}, "requirements": None}
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind == "current":
                state["current"] = rest.strip().rsplit("/", 1)[-1] or None
            elif kind == "active":
                state["active"] = rest.strip() == "active"
            elif kind == "sum":
                value, _, path = rest.partition(" ")
                state["sums"][path] = None if value == "-" else value
            elif kind == "requirements":
                state["requirements"] = None if rest.strip() == "-" else rest.strip()
            elif kind == "serving":
                state["serving"].append(None if rest.strip() == "-" else rest.strip())
        return state


@dataclasses.dataclass(frozen=True)
class Plan:
    """One app host's activation: what to do, why, and what it serves before."""

    host: str
    action: str
    reasons: tuple[str, ...]
    target: str
    previous: str | None
    #: Live paths whose wanted content differs (their candidates are staged next to them).
    changed_files: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(data["host"], data["action"], tuple(data["reasons"]), data["target"], data["previous"],
                   tuple(data["changed_files"]))


def decide(host: str, live: dict[str, Any], wanted: dict[str, str], target: str, target_requirements: str, *,
           service_unit: str, env_file: str, gunicorn_conf: str, preload: bool = False) -> Plan:
    """The activation an app host needs, from its live state and the wanted file contents (path -> sha256)."""
    changed = tuple(path for path, digest in wanted.items() if live["sums"].get(path) != digest)
    previous = live["current"]
    reasons: list[str] = []
    action = NONE
    if not live["active"]:
        action = START
        reasons.append("Gunicorn is not running")
    restart_because = [f"{path} changed" for path in changed if path in (service_unit, env_file, gunicorn_conf)]
    if previous not in (None, target) and live["requirements"] != target_requirements:
        restart_because.append(f"the pinned dependencies of {target} differ from those of {previous} "
                               "(a HUP keeps the master's modules)")
    if restart_because and action == NONE:
        action = RESTART
    reasons.extend(restart_because)
    reload_because = []
    if previous != target:
        reload_because.append(f"release {previous or '(none)'} -> {target}")
    # An answer naming no release (not answering, or a release installed before releases named themselves)
    # proves nothing either way; a named other release proves an interrupted deploy.
    stale = sorted({release for release in live["serving"] if release is not None and release != target})
    if live["active"] and stale and previous == target:
        reload_because.append(f"workers serve {', '.join(stale)} although {target} is current "
                              "(an interrupted deploy)")
    if reload_because and action == NONE:
        action = RELOAD
        if preload:
            # The master imported the app before forking: a HUP would fork workers with the old code.
            action = RESTART
            reload_because.append("app_preload: the master holds the code, so a HUP would not switch it")
    reasons.extend(reload_because)
    if changed and action == NONE:
        action = CONFIGURE
        reasons.extend(f"{path} changed" for path in changed)
    return Plan(host, action, tuple(reasons), target, previous, changed)
