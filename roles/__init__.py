"""The deploy's roles, one package each; `host_context()` is how a role gets its values (roles/README.md)."""

from __future__ import annotations

import functools
from typing import Any

from pyinfra import host

from tsdeploy.context import build_context
from tsdeploy.inventory import Inventory, load


@functools.cache
def _inventory(path: str) -> Inventory:
    # Loaded (and validated) once per pyinfra process; every host of the run shares it.
    return load(path)


def host_context() -> dict[str, Any]:
    """The template context of the host pyinfra is currently preparing operations for."""
    return build_context(_inventory(host.data.tsdeploy_inventory), host.name)
