"""`tsdeploy lab up|down|status|ssh|url|rebuild|images`: the command line over tsdeploy.lab.core.Lab."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from tsdeploy.lab import image
from tsdeploy.lab.core import DEFAULT_NAME, Lab, all_labs
from tsdeploy.lab.system import LabError, ensure_packages, progress, require_root
from tsdeploy.lab.topology import TOPOLOGIES

name_option = click.option(
    "--name", default=DEFAULT_NAME, show_default=True, envvar="TSDEPLOY_LAB", metavar="NAME",
    help="Which lab (several can run at once, each with its own subnet).",
)


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn LabError into a one-line error and exit status 1 instead of a traceback."""
    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LabError as error:
            raise click.ClickException(str(error)) from error
    return wrapper


@click.group()
def lab() -> None:
    """Build, inspect and remove lab hosts (systemd-nspawn containers with systemd) on this machine."""


@lab.command()
@name_option
@click.option("--topology", type=click.Choice(sorted(TOPOLOGIES)), default="single", show_default=True,
              help="single: one host in every group; split: db1, backup1, cache1, app1, app2, lb1, monitor1.")
@click.option("--release", type=click.Choice(image.RELEASES), default="bookworm", show_default=True,
              help="Debian release of the hosts.")
@click.option("--inventory-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where to write the inventory [default: inventories/lab, or inventories/lab-NAME].")
@_friendly
def up(name: str, topology: str, release: str, inventory_dir: Path | None) -> None:
    """Build the lab's hosts (or reuse running ones) and write its inventory."""
    built = Lab(name).up(topology, release, inventory_dir)
    for host, address in built.hosts.items():
        click.echo(f"{host}\t{address}")
    click.echo(f"inventory\t{built.inventory_dir}")


@lab.command()
@name_option
@click.option("--all", "everything", is_flag=True, help="Remove every lab on this machine.")
@click.option("--purge", is_flag=True, help="Also drop the cached base images (when no lab is left).")
@_friendly
def down(name: str, everything: bool, purge: bool) -> None:
    """Stop the lab's hosts and remove every trace of it (mounts, bridge, nft table, inventory, state)."""
    for target in all_labs() if everything else [Lab(name)]:
        target.down()
    if purge:
        if all_labs():
            raise LabError("other labs still use the cached base images: run `tsdeploy lab down --all --purge`")
        image.remove_images()
        progress("removed the cached base images")


@lab.command()
@click.argument("releases", nargs=-1, type=click.Choice(image.RELEASES))
@_friendly
def images(releases: tuple[str, ...]) -> None:
    """Build the cached base images of RELEASES (default: all) now, so a later `lab up` only boots hosts."""
    require_root()
    ensure_packages()
    for release in releases or image.RELEASES:
        click.echo(f"{release}\t{image.ensure_image(release)}")


@lab.command()
@name_option
@click.argument("host")
@_friendly
def rebuild(name: str, host: str) -> None:
    """Lose HOST entirely (a power cut, its disk deleted) and boot it fresh: a disaster drill. Deploy afterwards."""
    Lab(name).rebuild(host)


@lab.command()
@click.option("--name", default=None, envvar="TSDEPLOY_LAB", metavar="NAME", help="Only this lab [default: all].")
@_friendly
def status(name: str | None) -> None:
    """List the lab's hosts, their addresses and whether each is running."""
    labs = [Lab(name)] if name else all_labs()
    for target in labs:
        for host, address, running in target.status():
            click.echo(f"{target.name}\t{host}\t{address}\t{'running' if running else 'stopped'}")


@lab.command(context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_friendly
def ssh(name: str, host: str, command: tuple[str, ...]) -> None:
    """Open a shell on HOST as the deploy user, or run COMMAND there."""
    target = Lab(name)
    if host not in target.hosts:
        raise LabError(f"host {host!r} is not in lab {name!r}: hosts are {', '.join(target.hosts) or 'none (lab is down)'}")
    os.execvp("ssh", ["ssh", "-F", str(target.ssh_config), *(["-t"] if not command else []), host, *command])


@lab.command()
@name_option
@_friendly
def url(name: str) -> None:
    """Print the lab's HTTPS URL (the load balancer's address)."""
    click.echo(Lab(name).url())
