"""How a role's operations get their values inside a pyinfra run: the host's template context."""

from __future__ import annotations

import functools

from pyinfra import config, host
from pyinfra.api import operation

from tsdeploy import runlog

from tsdeploy.inventory import load
from tsdeploy.rolespec import Context
from tsdeploy.topology import Topology


@functools.cache
def _topology(path: str) -> Topology:
    # Loaded (and validated) once per pyinfra process; every host of the run shares it and its role contexts.
    return Topology(load(path))


def host_context() -> Context:
    """The template context of the host pyinfra is currently preparing operations for."""
    return _topology(host.data.tsdeploy_inventory).host_context(host.name)


def start_run() -> None:
    """Settings of every pyinfra entry file: sudo, and the per-host run log for the summary.

    Fail-stop (a failure on any host stops every host before its next operation) needs pyinfra's
    `--fail-percent 0` on the command line, which `tsdeploy deploy` passes: pyinfra resets config values a
    deploy file sets once it has loaded, so setting FAIL_PERCENT here would have no effect.
    """
    config.SUDO = True
    runlog.record()


@operation(is_idempotent=True)
def converged():
    """Nothing to do: a barrier. Called from the same line on every host, it is ONE node in pyinfra's
    operation graph, after every host's earlier operations and before any host's later ones. Without it,
    pyinfra orders the operations of different hosts by their depth and source line, so an operation of one
    host may run before an earlier-written operation of another host it depends on."""
    yield from ()
