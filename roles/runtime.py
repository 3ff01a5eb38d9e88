"""How a role's operations get their values inside a pyinfra run: the host's template context."""

from __future__ import annotations

import functools

from pyinfra import config, host

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
