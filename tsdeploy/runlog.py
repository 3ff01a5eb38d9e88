"""What a pyinfra run did on each host, operation by operation, for an honest deploy summary.

pyinfra's own `--json` results name an operation once for all hosts (the first name it was given, although
names carry host-specific values) and count an operation that never ran, because an earlier one failed, as
failed. The summary a deploy prints must instead say, per host: which operations changed something, which
failed (and why), and which were not run.

Each pyinfra entry file calls `record()` first. While the entry file adds operations it records the name each
host gave each operation; when the pyinfra process exits it writes, to the file named by `TSDEPLOY_RUNLOG`,
every host's operations in execution order with their outcome:

    {"hosts": {"app1": [{"name": "...", "status": "changed|unchanged|failed|not run", "error": "..."}]},
    }

A host that cannot be reached stops the run before the entry file runs (`--fail-percent 0`): then no log is
written and the caller reports pyinfra's own message.

`read()` turns that file into a `RunLog` on the control node.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import json
import os
import pathlib
from collections.abc import Iterable

RUNLOG_ENV = "TSDEPLOY_RUNLOG"

CHANGED, UNCHANGED, FAILED, NOT_RUN = "changed", "unchanged", "failed", "not run"
#: The last lines of a failed operation's output kept as its reason.
ERROR_LINES = 12

_names: dict[tuple[str, str], str] = {}
_installed = False


def record() -> None:
    """Record per-host operation names in this pyinfra process and write the run log when it exits."""
    global _installed
    path = os.environ.get(RUNLOG_ENV)
    if _installed or not path:
        return
    _installed = True
    from pyinfra.context import ctx_state

    # `pyinfra.api.operation` as an attribute is the decorator; the module holds the function to wrap.
    operation_module = importlib.import_module("pyinfra.api.operation")

    solve = operation_module.solve_operation_consistency

    # The op hash is computed right after the host's name for the call is generated: the one place where
    # pyinfra knows both (it keeps only the union of names per op hash afterwards).
    def solve_and_record(names, state, host):  # type: ignore[no-untyped-def]
        op_order, op_hash = solve(names, state, host)
        _names[(host.name, op_hash)] = sorted(names)[0]
        return op_order, op_hash

    operation_module.solve_operation_consistency = solve_and_record
    state = ctx_state.get()
    atexit.register(_write, state, pathlib.Path(path))


def _outcome(meta: object) -> tuple[str, str]:
    if not meta.is_complete():  # type: ignore[attr-defined]
        return NOT_RUN, ""
    if meta.did_succeed():  # type: ignore[attr-defined]
        return (CHANGED if meta.did_change() else UNCHANGED), ""  # type: ignore[attr-defined]
    output = meta._combined_output  # type: ignore[attr-defined]
    lines = [line for line in (output.stderr_lines + output.stdout_lines if output else []) if line.strip()]
    return FAILED, "\n".join(lines[-ERROR_LINES:]) or "(no output)"


def _write(state: object, path: pathlib.Path) -> None:
    hosts: dict[str, list[dict[str, str]]] = {}
    for host in state.inventory:  # type: ignore[attr-defined]
        if host not in state.activated_hosts:  # type: ignore[attr-defined]
            continue
        entries = []
        for op_hash in host.op_hash_order:
            data = state.ops.get(host, {}).get(op_hash)  # type: ignore[attr-defined]
            if data is None:  # a _run_once operation that another host runs
                continue
            status, error = _outcome(data.operation_meta)
            name = _names.get((host.name, op_hash)) or sorted(state.op_meta[op_hash].names)[0]  # type: ignore[attr-defined]
            entries.append({"name": name, "status": status, "error": error})
        hosts[host.name] = entries
    path.write_text(json.dumps({"hosts": hosts}))


@dataclasses.dataclass(frozen=True)
class Operation:
    host: str
    name: str
    status: str
    error: str = ""


@dataclasses.dataclass(frozen=True)
class RunLog:
    """Every operation of one or more pyinfra runs, per host, in order."""

    operations: tuple[Operation, ...] = ()

    def __add__(self, other: RunLog) -> RunLog:
        return RunLog(self.operations + other.operations)

    @property
    def changes(self) -> list[str]:
        """"host: operation" for every operation run that changed something."""
        return [f"{op.host}: {op.name}" for op in self.with_status(CHANGED)]

    @property
    def summary(self) -> str:
        return f"changed: {len(self.with_status(CHANGED))} operations on {len(self.changed_hosts)} hosts"

    def with_status(self, status: str) -> list[Operation]:
        return [op for op in self.operations if op.status == status]

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(op.host for op in self.operations))

    @property
    def changed_hosts(self) -> list[str]:
        return list(dict.fromkeys(op.host for op in self.with_status(CHANGED)))

    @property
    def failed(self) -> bool:
        return bool(self.with_status(FAILED))

    def counts(self, host: str) -> dict[str, int]:
        counts = {CHANGED: 0, UNCHANGED: 0, FAILED: 0, NOT_RUN: 0}
        for op in self.operations:
            if op.host == host:
                counts[op.status] += 1
        return counts

    def table(self) -> list[str]:
        """One line per host: operations changed, unchanged, failed and not run."""
        lines = []
        for host in self.hosts:
            c = self.counts(host)
            lines.append(f"  {host}: {c[CHANGED]} changed, {c[UNCHANGED]} unchanged, {c[FAILED]} failed, "
                         f"{c[NOT_RUN]} not run")
        return lines

    def failures(self) -> list[str]:
        """Each failed operation with its host and reason, then how many operations a failure left unrun."""
        lines = []
        for op in self.with_status(FAILED):
            lines.append(f"  {op.host}: {op.name} failed:")
            lines.extend(f"      {line}" for line in op.error.splitlines())
        for host in self.hosts:
            skipped = self.counts(host)[NOT_RUN]
            if skipped:
                lines.append(f"  {host}: {skipped} operations not run (the deploy stopped at the first failure)")
        return lines


def read(path: pathlib.Path) -> RunLog:
    """The run log a pyinfra process wrote (empty when it died before writing one)."""
    try:
        payload = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return RunLog()
    operations = tuple(Operation(host, entry["name"], entry["status"], entry.get("error", ""))
                       for host, entries in payload["hosts"].items() for entry in entries)
    return RunLog(operations)


def merge(logs: Iterable[RunLog]) -> RunLog:
    total = RunLog()
    for log in logs:
        total = total + log
    return total
