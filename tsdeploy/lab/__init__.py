"""The lab: real Debian hosts with systemd (systemd-nspawn) on this machine, and the inventory for them.

`Lab(name).up(topology, release, inventory_dir)` / `.down()` is the Python API (docs/contracts.md);
`tsdeploy lab ...` is the command line.
"""

from tsdeploy.lab.cli import lab
from tsdeploy.lab.core import Lab
from tsdeploy.lab.system import LabError

__all__ = ["Lab", "LabError", "lab"]
