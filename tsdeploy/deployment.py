"""`tsdeploy deploy INVENTORY`: validate the inventory, run pyinfra on deploy.py, count what changed.

pyinfra runs as a subprocess of this virtualenv's `pyinfra` with `-y --json`: its progress goes to stderr
(passed through), its machine-readable results to stdout, from which the last line is computed:
`changed: N operations on M hosts` (N = operation runs that changed something, M = hosts they ran on).

The app release is built (or found in the cache) BEFORE pyinfra starts, from one snapshot of the app tree,
and its id is pinned for the run: every app host gets the same release, and the release a deploy ships is
named on stderr, so a "second deploy" that changes the app hosts says which new release it brought.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time

import click

from roles import registry
from roles.registry import Group
from tsdeploy import ROOT, artifacts
from tsdeploy.topology import Topology
from tsdeploy.inventory import Inventory, InventoryError, load

DEPLOY_FILE = ROOT / "deploy.py"
PYINFRA_INVENTORY = ROOT / "inventories" / "ansible.py"


@dataclasses.dataclass(frozen=True)
class DeployResult:
    """What one pyinfra run did, from its `--json` results."""

    changed_operations: int
    changed_hosts: list[str]
    #: "host: operation name" for every operation run that changed something.
    changes: list[str]
    failed: list[str]
    hosts: list[str]
    seconds: float

    @property
    def summary(self) -> str:
        return f"changed: {self.changed_operations} operations on {len(self.changed_hosts)} hosts"


def parse_results(payload: dict, seconds: float = 0.0) -> DeployResult:
    """Count changed operation runs and the hosts they ran on from pyinfra's `--json` payload."""
    results = payload.get("results") or {"operations": []}
    changed_hosts: set[str] = set()
    all_hosts: set[str] = set()
    failed: list[str] = []
    changes: list[str] = []
    for operation in results["operations"]:
        changes.extend(f"{host}: {operation['name']}" for host in operation["success"])
        changed_hosts.update(operation["success"])
        all_hosts.update(operation["success"] + operation["no_change"] + operation["error"])
        failed.extend(f"{host}: {operation['name']}" for host in operation["error"])
    return DeployResult(len(changes), sorted(changed_hosts), changes, failed, sorted(all_hosts), seconds)


def pyinfra_command(limit: tuple[str, ...], diff: bool, deploy_file: pathlib.Path = DEPLOY_FILE) -> list[str]:
    """The pyinfra command line (no secrets in it: they come from the inventory's vault)."""
    command = [str(pathlib.Path(sys.executable).parent / "pyinfra"), str(PYINFRA_INVENTORY), str(deploy_file),
               "-y", "--json"]
    for name in limit:
        command += ["--limit", name]
    if diff:
        command.append("--diff")
    return command


def pin_release(inventory: Inventory) -> dict[str, str]:
    """Build the app release for every app host's Python from one snapshot; the env that pins its id."""
    topology = Topology(inventory)
    releases = {topology.facts(name)["debian_release"] for name in inventory.hosts_in(Group.APP)}
    if not releases:
        return {}
    try:
        built = artifacts.build_all(releases)
    except artifacts.ArtifactError as error:
        raise click.ClickException(f"building the app release failed: {error}") from None
    rid = next(iter(built.values())).release_id
    click.echo(f"==> app release {rid} (from {artifacts.app_source_dir()}), the same on every app host", err=True)
    return {artifacts.RELEASE_ENV: rid}


def pyinfra_env(inventory: Inventory) -> dict[str, str]:
    """The environment of a pyinfra run on this inventory (its path and vault password file, no secrets)."""
    env = dict(os.environ, TSDEPLOY_INVENTORY=str(inventory.path.resolve()), PYINFRA_PROGRESS="off")
    if inventory.vault_password_file is not None:
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(inventory.vault_password_file)
    return env


def run(inventory: Inventory, limit: tuple[str, ...] = (), diff: bool = False, *,
        deploy_file: pathlib.Path = DEPLOY_FILE, extra_env: dict[str, str] | None = None) -> DeployResult:
    """Run pyinfra with `deploy_file` against a loaded (validated) inventory and return what changed.

    deploy.py ships the app release pinned by `pin_release`; other entry points (rollback) bring their
    own settings in `extra_env`.
    """
    env = pyinfra_env(inventory) | (extra_env or {})
    if deploy_file == DEPLOY_FILE:
        env.update(pin_release(inventory))
    started = time.monotonic()
    process = subprocess.run(pyinfra_command(limit, diff, deploy_file), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=None, text=True, check=False)
    seconds = time.monotonic() - started
    try:
        payload = json.loads(process.stdout)
    except json.JSONDecodeError:
        raise click.ClickException(
            f"pyinfra exited with {process.returncode} without JSON results (see its messages above)") from None
    result = parse_results(payload, seconds)
    if process.returncode != 0 or result.failed:
        failures = "\n".join(f"  - {failure}" for failure in result.failed) or "  (no operation named)"
        click.echo(result.summary, err=True)
        raise click.ClickException(f"pyinfra exited with {process.returncode}; failed operations:\n{failures}")
    return result


def _print_warnings(inventory: Inventory) -> None:
    """What a role's derivation found questionable (e.g. PostgreSQL's demand beyond its memory), per host."""
    topology = Topology(inventory)
    for hostname in inventory.hosts:
        for entry in registry.roles_for(inventory.groups_of(hostname)):
            for warning in topology.role_context(entry.name, hostname).get("warnings", ()):
                click.echo(f"warning: {hostname}: {warning}", err=True)


@click.command("deploy")
@click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--limit", multiple=True, metavar="HOST|GROUP", help="Only deploy these hosts or groups.")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
@click.option("--diff", is_flag=True, help="Show changes to files (files holding secrets stay hidden).")
def deploy(inventory: pathlib.Path, limit: tuple[str, ...], vault_password_file: str | None, diff: bool) -> None:
    """Validate INVENTORY, deploy it with pyinfra and print `changed: N operations on M hosts`."""
    try:
        loaded = load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None
    click.echo(f"==> inventory {inventory}: {len(loaded.hosts)} hosts valid; deploying with pyinfra", err=True)
    _print_warnings(loaded)
    result = run(loaded, limit, diff)
    click.echo(f"==> pyinfra finished in {result.seconds:.0f} s on {len(result.hosts)} hosts", err=True)
    for change in result.changes:
        click.echo(f"  changed  {change}", err=True)
    click.echo(result.summary)
