"""What the backup commands read on a host: pgBackRest's info, the last drill's result, the last restore's.

`tsdeploy backups`, `backup`, `drill` and `restore` read these with `pyinfra INVENTORY fact ...` (read-only,
tsdeploy.deployment.read_fact), which connects as the deploy user without sudo: each command asks for sudo
itself (`sudo -n`, the deploy user's passwordless sudo), since the repository and its configuration are
readable by postgres only.

Each fact's command always exits 0 and reports a failure in its data instead: a failed fact command fails
the host in pyinfra, and the command's error message (pgBackRest's "unable to find primary cluster", sudo
refusing) would be lost in pyinfra's own output.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase

#: Where the restore leaves what it did, one JSON file per step and host (root 0644; not secret).
RESTORE_RESULT_DIR = "/var/lib/tsdeploy/restore"


def _as_postgres(*words: str) -> str:
    return "sudo -n -u postgres " + shlex.join(words)


def _split_status(output: list[str]) -> tuple[int, list[str]]:
    """The exit status the command printed last ("rc=N") and the lines before it."""
    if output and output[-1].startswith("rc="):
        return int(output[-1][3:] or 1), output[:-1]
    return 1, output


def parse_info(output: list[str]) -> dict[str, Any]:
    """`pgbackrest --output=json info` as printed by BackupInfo's command.

    >>> parse_info(['[{"name": "ts", "status": {"code": 0, "message": "ok"}}]', "rc=0"])["stanzas"][0]["name"]
    'ts'
    >>> parse_info(["ERROR: [041]: unable to open file", "rc=41"])
    {'stanzas': None, 'error': 'pgbackrest info exited 41: ERROR: [041]: unable to open file', 'messages': []}
    """
    status, lines = _split_status(output)
    documents = [line for line in lines if line.startswith("[")]
    messages = [line for line in lines if not line.startswith("[") and line.strip()]
    if status != 0 or len(documents) != 1:
        text = " ".join(messages) or "(no output)"
        return {"stanzas": None, "error": f"pgbackrest info exited {status}: {text}", "messages": []}
    try:
        stanzas = json.loads(documents[0])
    except json.JSONDecodeError as error:
        return {"stanzas": None, "error": f"pgbackrest info printed no valid JSON ({error})", "messages": messages}
    return {"stanzas": stanzas, "error": None, "messages": messages}


class BackupInfo(FactBase):
    """pgBackRest's view of a stanza's repositories, read on the backup host.

    .. code:: python

        {"stanzas": [<pgbackrest --output=json info>], "error": None, "messages": []}
        {"stanzas": None, "error": "pgbackrest info exited 41: ...", "messages": []}

    "stanzas" is pgBackRest's document as is: a list with one entry for the stanza (name, status, repo[],
    db[], archive[], backup[] with label, type, timestamp.start/stop, info.size, info.repository.size,
    archive.start/stop, database.repo-key ...). Messages are the warnings pgBackRest printed beside it.
    """

    def command(self, stanza: str) -> str:
        # Errors go to stderr (log-level-stderr defaults to warn): folded in so that they reach the caller. The
        # JSON ends without a newline: one is added before the status line.
        return (f"{_as_postgres('pgbackrest', f'--stanza={stanza}', '--output=json', 'info')} 2>&1; rc=$?; "
                "echo; echo \"rc=$rc\"")

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_info(output)


def parse_json_file(output: list[str]) -> dict[str, Any]:
    """A JSON file printed by a fact: {"now": host epoch, "data": its content or None, "error": ...}.

    >>> parse_json_file(["now=1700000000", '{"passed": true}', "rc=0"])
    {'now': 1700000000, 'data': {'passed': True}, 'error': None}
    >>> parse_json_file(["now=1700000000", "missing", "rc=0"])["data"] is None
    True
    """
    status, lines = _split_status(output)
    now = int(lines[0][4:]) if lines and lines[0].startswith("now=") else None
    body = [line for line in lines[1:] if line.strip()] if now is not None else lines
    if status != 0:
        return {"now": now, "data": None, "error": " ".join(body) or f"exit status {status}"}
    if body == ["missing"]:
        return {"now": now, "data": None, "error": None}
    try:
        return {"now": now, "data": json.loads("\n".join(body)), "error": None}
    except json.JSONDecodeError as error:
        return {"now": now, "data": None, "error": f"not valid JSON ({error}): {' '.join(body)[:300]}"}


class DrillResult(FactBase):
    """The last restore drill's result file (written by the drill on every run, passed or failed).

    .. code:: python

        {"now": 1764560000, "data": {"passed": True, "backup_label": "20261201-012103F", ...}, "error": None}
        {"now": 1764560000, "data": None, "error": None}        # no drill has run yet

    "now" is the host's clock (epoch seconds), so that the caller can tell a result written by the drill it
    just started from an older one without trusting the two clocks to agree.
    """

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (f"echo \"now=$(date +%s)\"; if sudo -n test -e {quoted}; then sudo -n cat {quoted} 2>&1; rc=$?; "
                f"else echo missing; rc=0; fi; echo; echo \"rc=$rc\"")

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_json_file(output)


def parse_results(output: list[str]) -> dict[str, Any]:
    """RestoreResults' output: one "== <name>" line before each file's JSON.

    >>> parse_results(["== recovery.json", '{"run": "a"}', "== schema.json", '{"run": "a"}'])
    {'recovery': {'run': 'a'}, 'schema': {'run': 'a'}}
    """
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        if line.startswith("== "):
            current = files.setdefault(line[3:].strip().removesuffix(".json"), [])
        elif current is not None:
            current.append(line)
    results = {}
    for name, lines in files.items():
        try:
            results[name] = json.loads("\n".join(lines))
        except json.JSONDecodeError:
            results[name] = {"error": f"unreadable result file {name}.json"}
    return results


class RestoreResults(FactBase):
    """What the last `tsdeploy restore` recorded on this host (see roles/backup/restore.py).

    .. code:: python

        {"recovery": {"run": "<id>", "recovery_point": "2026-12-01 01:02:03.456+00", "backup_set": ...},
         "schema": {"run": "<id>", "before": "abc123", "head": "abc123", "migrated": False}}

    {} when no restore ran on the host. Each entry carries the run id of the restore that wrote it.
    """

    default = dict

    def command(self) -> str:
        return (f"for f in {RESTORE_RESULT_DIR}/*.json; do [ -f \"$f\" ] || continue; "
                "echo \"== ${f##*/}\"; cat \"$f\"; echo; done; true")

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_results(output)
