"""`tsdeploy rollback INVENTORY [--to RELEASE]`: serve an older installed release on every app host.

One pyinfra run reads every app host's releases (the AppReleases fact, read-only); the control node picks
the release (`tsdeploy.artifacts.rollback_target`, which refuses with the reason when there is none or the
hosts disagree); then the app hosts are activated on it one at a time like a deploy's second phase
(tsdeploy.rolling): out of the lb's rotation, checked, switched, restarted, ready on that release id, back in
rotation, and put back on the release they served if it does not get ready.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

import click

from roles.app.live import NONE, RELOAD, RESTART, Plan
from roles.registry import Group
from tsdeploy import artifacts, rolling
from tsdeploy.deployment import read_fact
from tsdeploy.inventory import Inventory, InventoryError, load
from tsdeploy.topology import Topology

#: The pyinfra fact (module path, as pyinfra's `fact` command takes it) that lists a host's releases.
RELEASES_FACT = "roles.app.release.AppReleases"


def read_releases(inventory: Inventory) -> dict[str, dict]:
    """Every app host's installed releases and live release (AppReleases), read with `pyinfra ... fact`."""
    app = Topology(inventory).service("app")
    states = read_fact(inventory, RELEASES_FACT, (f"releases_dir={app['releases_dir']}",
                                                  f"current={app['current_dir']}"), (str(Group.APP),))
    unread = sorted(name for name, state in states.items() if not state)
    if unread or set(states) != set(inventory.hosts_in(Group.APP)):
        missing = unread or sorted(set(inventory.hosts_in(Group.APP)) - set(states))
        raise click.ClickException(f"could not read the releases of {', '.join(missing)} (unreachable, or its releases directory unreadable)")
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
    `gunicorn --check-config`, switches /opt/talentsphere/current atomically and restarts Gunicorn one host at
    a time out of the lb's rotation, waiting for /health/ready to name the release; it refuses when an app
    host has no older release or the hosts disagree.

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
    plans = rollback_plans(loaded, live, target)
    with tempfile.TemporaryDirectory(prefix="tsdeploy-rollback-") as scratch:
        plan_file = pathlib.Path(scratch) / "plans.json"
        plan_file.write_text(json.dumps({name: plan.as_json() for name, plan in plans.items()}))
        result = rolling.activate(loaded, plans, plan_file, {})
    for change in result.changes:
        click.echo(f"  changed  {change}", err=True)
    click.echo(f"==> release {target} serves on {len(plans)} app hosts", err=True)
    click.echo(result.summary)


def rollback_plans(inventory: Inventory, live: dict[str, str], target: str) -> dict[str, Plan]:
    """One activation per app host: the older release, its configuration unchanged, host by host.

    With a second app host to serve meanwhile, Gunicorn restarts (the older release may pin other
    dependencies than the master loaded); alone, a HUP serves it without dropping a request.
    """
    action = RESTART if len(inventory.hosts_in(Group.APP)) > 1 else RELOAD
    return {name: Plan(name, action if live[name] != target else NONE, (f"rollback: release {live[name]} -> {target}",),
                       target, live[name] or None, ())
            for name in inventory.hosts_in(Group.APP)}
