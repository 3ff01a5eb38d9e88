"""THE template context builder: one pure function of the inventory (no live facts) per host.

`build_context(inventory, hostname)` returns `{"host": ..., "peers": ..., "<role>": ...}` with one section
per role that runs on the host, each derived by that role (`roles/<role>/context.py`) from the roles'
defaults < the inventory's variables (see `tsdeploy.topology`). The deploy, `tsdeploy generate` and the
verify drift check all render from it, so a generated file is byte-identical to the deployed one. A host
gets only its own roles' sections: secrets reach only the hosts whose files need them.
"""

from __future__ import annotations

from tsdeploy.ansible_inventory import Inventory
from tsdeploy.rolespec import Context
from tsdeploy.topology import Topology


def build_context(inventory: Inventory, hostname: str) -> Context:
    """The template context for one host (see the module's docstring)."""
    return Topology(inventory).host_context(hostname)
