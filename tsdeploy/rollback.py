"""`tsdeploy rollback INVENTORY [--to RELEASE]`: serve an older installed release on every app host.

Two pyinfra runs: one reads every app host's releases (the AppReleases fact, read-only), the control node
picks the release (`tsdeploy.artifacts.rollback_target`, which refuses with the reason when there is none
or the hosts disagree), then `roles/app/rollback_deploy.py` validates it, switches `current` atomically,
HUPs Gunicorn and waits for /health/ready on each app host.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import click

import roles.app
from roles.registry import Group
from tsdeploy import ROOT, artifacts
from tsdeploy.topology import Topology
from tsdeploy.deployment import PYINFRA_INVENTORY, pyinfra_env, run
from tsdeploy.inventory import Inventory, InventoryError, load

ROLLBACK_FILE = pathlib.Path(roles.app.__file__).parent / "rollback_deploy.py"
#: The pyinfra fact (module path, as pyinfra's `fact` command takes it) that lists a host's releases.
RELEASES_FACT = "roles.app.release.AppReleases"
ROLLBACK_ENV = "TSDEPLOY_ROLLBACK_TO"


def read_releases(inventory: Inventory) -> dict[str, dict]:
    """Every app host's installed releases and live release (AppReleases), read with `pyinfra ... fact`."""
    app = Topology(inventory).service("app")
    command = [str(pathlib.Path(sys.executable).parent / "pyinfra"), str(PYINFRA_INVENTORY), "fact",
               RELEASES_FACT, f"releases_dir={app['releases_dir']}", f"current={app['current_dir']}",
               "--limit", str(Group.APP), "--json", "-y"]
    process = subprocess.run(command, cwd=ROOT, env=pyinfra_env(inventory), capture_output=True, text=True,
                             check=False)
    try:
        payload = json.loads(process.stdout)
    except json.JSONDecodeError:
        raise click.ClickException(f"reading the app hosts' releases failed (pyinfra exit {process.returncode}):"
                                   f"\n{process.stderr[-3000:]}") from None
    # pyinfra's JSON: {"<fact> (<arguments>)": {host: fact data}}, one entry for the one fact asked.
    states = next(iter(payload.values()), {}) if len(payload) == 1 else {}
    unread = sorted(name for name, state in states.items() if not state)
    if unread or set(states) != set(inventory.hosts_in(Group.APP)):
        missing = unread or sorted(set(inventory.hosts_in(Group.APP)) - set(states))
        raise click.ClickException(f"could not read the releases of {', '.join(missing)}:\n{process.stderr[-3000:]}")
    return states


@click.command("rollback")
@click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--to", "to", metavar="RELEASE",
              help="Release id to switch to (default: the one installed just before the live one).")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
def rollback(inventory: pathlib.Path, to: str | None, vault_password_file: str | None) -> None:
    """Switch every app host of INVENTORY back to the previous release (or --to RELEASE).

    Each app host keeps its last `app_releases_keep` releases. The rollback checks the release with
    `gunicorn --check-config`, switches /opt/talentsphere/current atomically, HUPs Gunicorn and waits for
    /health/ready; it refuses when an app host has no older release or the hosts disagree.

    Migrations are NOT run backwards: the database keeps the newer schema, so every schema change must stay
    backward compatible for one release (add first, remove in a later release). The next
    `tsdeploy deploy` switches back to the release built from app/.
    """
    try:
        loaded = load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None
    if not loaded.hosts_in(Group.APP):
        raise click.ClickException(f"the inventory {inventory} has no app hosts: there is nothing to roll back")
    states = read_releases(loaded)
    try:
        target = artifacts.rollback_target(states, to)
    except artifacts.RollbackRefused as error:
        raise click.ClickException(f"rollback refused: {error}") from None
    live = {name: (state["current"] or "").rsplit("/", 1)[-1] for name, state in states.items()}
    if set(live.values()) == {target}:
        click.echo(f"==> release {target} is already live on every app host; nothing to do", err=True)
        click.echo("changed: 0 operations on 0 hosts")
        return
    hosts = ", ".join(f"{name} {rid}" for name, rid in sorted(live.items()))
    click.echo(f"==> rolling back to release {target} (live: {hosts}); migrations are not reversed", err=True)
    result = run(loaded, (str(Group.APP),), deploy_file=ROLLBACK_FILE, extra_env={ROLLBACK_ENV: target})
    for change in result.changes:
        click.echo(f"  changed  {change}", err=True)
    click.echo(f"==> release {target} serves on {len(result.hosts)} app hosts", err=True)
    click.echo(result.summary)
