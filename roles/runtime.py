"""How a role's operations get their values inside a pyinfra run: the host's template context."""

from __future__ import annotations

import functools

from pyinfra import host

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
