"""`tsdeploy deploy INVENTORY`: validate, then deploy in two phases that never drop a request or half-apply.

1. One pyinfra run of deploy.py on every host: each role converges its host; on app hosts the release is
   installed, changed config files are staged as candidates, the release is checked with them and the
   database is migrated once. Nothing an app host serves changes yet. pyinfra runs with a fail percent of
   0: a failure on any host stops every host before its next operation.
2. The app hosts whose live state differs from the target (another release, changed files, Gunicorn not
   running, or workers serving a release other than `current`) are activated one at a time, or
   `app_serial` at a time (tsdeploy.rolling): out of the lb's rotation, switched, started/HUPed/restarted,
   ready on the new release, back in rotation. A host that does not get ready is put back on its
   previous release and the deploy stops.

The app release is built (or found in the cache) BEFORE pyinfra starts, from one snapshot of the app tree,
and its id is pinned for the run. Every pyinfra run writes a per-host log of its operations
(tsdeploy.runlog): the summary says, per host, what changed, what failed and why, and what was not run.
PostgreSQL and Redis are restarted only when `--allow-restart` (or the inventory's policy) allows it; a
restart that waits is reported at the end.

Before any of it, every host's SSH key must be pinned in the inventory's known_hosts file (tsdeploy.host_keys):
the first deploy sends the env file and TLS keys, so it never trusts a key on first contact.
`--trust-new-hosts` records the keys of hosts the file does not know yet (printing each fingerprint) and
refuses a host whose key changed.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import click

from roles import registry
from roles.registry import Group
from tsdeploy import ROOT, artifacts, host_keys, runlog
from tsdeploy.inventory import Inventory, InventoryError, load
from tsdeploy.topology import Topology

DEPLOY_FILE = ROOT / "deploy.py"
PYINFRA_INVENTORY = ROOT / "inventories" / "ansible.py"
#: The roles whose service a deploy restarts only when allowed (`--allow-restart`).
RESTARTABLE = ("postgres", "redis")
ALLOW_RESTART_ENV = "TSDEPLOY_ALLOW_RESTART"
PENDING_RESTARTS_FACT = "roles.common.restarts.PendingRestarts"


class DeployFailed(click.ClickException):
    """A pyinfra run failed: the message names each failed operation's host and reason."""

    def __init__(self, message: str, log: runlog.RunLog) -> None:
        super().__init__(message)
        self.log = log


def pyinfra_command(limit: tuple[str, ...], diff: bool, deploy_file: pathlib.Path = DEPLOY_FILE) -> list[str]:
    """The pyinfra command line (no secrets in it: they come from the inventory's vault)."""
    command = [str(pathlib.Path(sys.executable).parent / "pyinfra"), str(PYINFRA_INVENTORY), str(deploy_file),
               "-y", "--fail-percent", "0"]
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
        deploy_file: pathlib.Path = DEPLOY_FILE, extra_env: dict[str, str] | None = None,
        what: str = "pyinfra") -> runlog.RunLog:
    """Run pyinfra with `deploy_file` against a loaded (validated) inventory; what it did on each host.

    pyinfra's own output goes to stderr. Raises DeployFailed, naming each failed operation with its host
    and reason and what was not run, when an operation failed or pyinfra stopped.
    """
    with tempfile.TemporaryDirectory(prefix="tsdeploy-run-") as scratch:
        log_path = pathlib.Path(scratch) / "runlog.json"
        env = pyinfra_env(inventory) | (extra_env or {}) | {runlog.RUNLOG_ENV: str(log_path)}
        process = subprocess.run(pyinfra_command(limit, diff, deploy_file), cwd=ROOT, env=env, stdout=sys.stderr,
                                 stderr=None, check=False)
        log = runlog.read(log_path)
    if process.returncode == 0 and not log.failed:
        return log
    if not log.operations:
        raise DeployFailed(f"{what}: pyinfra exited with {process.returncode} before running any operation "
                           "(a host unreachable, a host presenting another SSH key than the one pinned in the inventory's known_hosts "
                           "file, or the inventory unreadable: see its messages above)", log)
    lines = [f"{what} failed; the deploy stopped there:", *log.failures(), "per host:", *log.table()]
    raise DeployFailed("\n".join(lines), log)


def read_fact(inventory: Inventory, fact: str, arguments: tuple[str, ...] = (),
              limit: tuple[str, ...] = ()) -> dict[str, object]:
    """A pyinfra fact of every (limited) host, read with `pyinfra INVENTORY fact` (read-only): host -> data."""
    command = [str(pathlib.Path(sys.executable).parent / "pyinfra"), str(PYINFRA_INVENTORY), "fact", fact,
               *arguments, "--json", "-y"]
    for name in limit:
        command += ["--limit", name]
    process = subprocess.run(command, cwd=ROOT, env=pyinfra_env(inventory), capture_output=True, text=True,
                             check=False)
    try:
        payload = json.loads(process.stdout)
    except json.JSONDecodeError:
        raise click.ClickException(f"reading {fact} failed (pyinfra exit {process.returncode}):"
                                   f"\n{process.stderr[-3000:]}") from None
    # pyinfra's JSON: {"<fact> (<arguments>)": {host: fact data}}, one entry for the one fact asked.
    return next(iter(payload.values()), {}) if len(payload) == 1 else {}


def _print_warnings(inventory: Inventory) -> None:
    """What a role's derivation found questionable (e.g. PostgreSQL's demand beyond its memory), per host."""
    topology = Topology(inventory)
    for hostname in inventory.hosts:
        for entry in registry.roles_for(inventory.groups_of(hostname)):
            for warning in topology.role_context(entry.name, hostname).get("warnings", ()):
                click.echo(f"warning: {hostname}: {warning}", err=True)


def _allow_restart(value: str | None) -> str:
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in RESTARTABLE]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)} cannot be restarted by choice; use a comma-separated list "
                                 f"of: {', '.join(RESTARTABLE)}", param_hint="--allow-restart")
    return ",".join(names)


def pending_restarts(inventory: Inventory) -> list[str]:
    """"host service: reason" for every restart a deploy deferred (db and cache hosts)."""
    hosts = tuple(str(group) for group in (Group.DB, Group.CACHE) if inventory.hosts_in(group))
    if not hosts:
        return []
    states = read_fact(inventory, PENDING_RESTARTS_FACT, limit=hosts)
    return [f"{host} {service}: {reason}" for host, pending in sorted(states.items())
            for service, reason in sorted((pending or {}).items())]


@click.command("deploy")
@click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--limit", multiple=True, metavar="HOST|GROUP",
              help="Only deploy these hosts or groups (a rolling app deploy still drains on every lb host).")
@click.option("--allow-restart", metavar="postgres,redis", default="",
              help="Restart these stateful services if a changed setting needs it (default: report and wait).")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
@click.option("--diff", is_flag=True, help="Show changes to files (files holding secrets stay hidden).")
@click.option(host_keys.TRUST_FLAG, "trust_new", is_flag=True,
              help="Record the SSH keys of hosts the inventory's known_hosts file does not know yet (ssh-keyscan; "
                   "prints each fingerprint). A changed key is still refused.")
def deploy(inventory: pathlib.Path, limit: tuple[str, ...], allow_restart: str, vault_password_file: str | None,
           diff: bool, trust_new: bool) -> None:
    """Validate INVENTORY, deploy it (app hosts one at a time) and print `changed: N operations on M hosts`."""
    from tsdeploy import rolling

    allowed = _allow_restart(allow_restart)
    try:
        loaded = load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None
    host_keys.require_for_command(loaded, f"tsdeploy deploy {inventory}", trust_new=trust_new)
    click.echo(f"==> inventory {inventory}: {len(loaded.hosts)} hosts valid; deploying with pyinfra", err=True)
    _print_warnings(loaded)
    started = time.monotonic()
    env = pin_release(loaded) | {ALLOW_RESTART_ENV: allowed}
    with tempfile.TemporaryDirectory(prefix="tsdeploy-plan-") as scratch:
        plan_file = pathlib.Path(scratch) / "plans.json"
        log = run(loaded, limit, diff, extra_env=env | {rolling.PLAN_ENV: str(plan_file)},
                  what="the first phase (every role; app hosts: install, stage, check, migrate)")
        click.echo(f"==> first phase done in {time.monotonic() - started:.0f} s", err=True)
        log = log + rolling.activate(loaded, rolling.read_plans(plan_file), plan_file, env, prior=log)
    click.echo(f"==> deployed in {time.monotonic() - started:.0f} s; per host:", err=True)
    for line in log.table():
        click.echo(line, err=True)
    for change in log.changes:
        click.echo(f"  changed  {change}", err=True)
    for pending in pending_restarts(loaded):
        click.echo(f"pending restart: {pending}", err=True)
    click.echo(log.summary)
