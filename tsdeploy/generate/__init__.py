"""`tsdeploy generate`: configuration for platforms the deploy does not drive, from the deploy's own context.

Each target is a subcommand in its own module (`render` here; `vm` for hand-run hosts; `dashboards` for a
Grafana run elsewhere).
"""

import click

from tsdeploy.generate.dashboards import dashboards_command
from tsdeploy.generate.render import render_command
from tsdeploy.generate.vm import vm_command


@click.group()
def generate() -> None:
    """Generate configuration (Render Blueprint, per-host files) from an inventory, and Grafana dashboards."""


generate.add_command(dashboards_command)
generate.add_command(render_command)
generate.add_command(vm_command)
