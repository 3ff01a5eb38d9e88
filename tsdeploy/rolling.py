"""The rolling second phase of `tsdeploy deploy`: activate app hosts one batch at a time, never all at once.

For each batch (`app_serial` hosts, at most all app hosts but one), in inventory order:

1. take the batch out of every lb's rotation (nginx reloaded with those upstream servers `down`; the call
   returns once the old nginx workers finished the requests they held) and put the previous batch back;
2. activate the batch (roles/app/roll.py): candidates land, `current` switches, Gunicorn starts, HUPs or
   restarts as the host's plan says, and the host must answer /health/ready with the new release id;
3. after the last batch, every app host goes back into rotation.

A host that does not get ready is put back on its previous release by its own activation script, then back
into rotation, and the deploy stops: hosts of earlier batches serve the new release, the others the previous
one, and the error says which host serves which. With a single app host there is nothing to fail over to:
it is activated in place (a HUP drops nothing; a restart drops what is in flight, and the deploy says so).
"""

from __future__ import annotations

import json
import pathlib

import click

import roles.app
import roles.nginx
from roles.app.live import DRAINING_ACTIONS, NONE, Plan
from roles.app.prepare import PLAN_ENV
from roles.app.roll import NOT_REVERTED
from roles.nginx.context import upstream_entry
from roles.registry import Group
from tsdeploy import runlog
from tsdeploy.inventory import Inventory
from tsdeploy.topology import Topology

__all__ = ["PLAN_ENV", "activate", "batches", "read_plans"]

# The entry files live in the roles package (installed beside tsdeploy, not in its bundle).
ROLL_FILE = pathlib.Path(roles.app.__file__).parent / "roll_deploy.py"
DRAIN_FILE = pathlib.Path(roles.nginx.__file__).parent / "drain_deploy.py"
ROLL_ENV = "TSDEPLOY_ROLL"
DRAIN_ENV = "TSDEPLOY_DRAIN"


def read_plans(path: pathlib.Path) -> dict[str, Plan]:
    """The activation plans the first phase wrote (none when it had no app host)."""
    if not path.exists():
        return {}
    return {host: Plan.from_json(data) for host, data in json.loads(path.read_text()).items()}


def batches(plans: list[Plan], serial: int, app_hosts: int) -> list[list[Plan]]:
    """Plans grouped into batches of `serial`, capped so that one app host always stays in rotation.

    >>> [[p.host for p in b] for b in batches([Plan(h, "reload", (), "r", None, ()) for h in "abc"], 5, 3)]
    [['a', 'b'], ['c']]
    """
    size = max(1, min(serial, app_hosts - 1))
    return [plans[index:index + size] for index in range(0, len(plans), size)]


def _upstream(topology: Topology, host: str) -> str:
    return upstream_entry(topology.vars_of(host))


def activate(inventory: Inventory, plans: dict[str, Plan], plan_file: pathlib.Path, env: dict[str, str], *,
             prior: runlog.RunLog | None = None) -> runlog.RunLog:
    """Activate every app host whose plan has an action, batch by batch, out of the lb's rotation."""
    from tsdeploy.deployment import DeployFailed, run

    app_hosts = inventory.hosts_in(Group.APP)
    todo = [plans[host] for host in app_hosts if host in plans and plans[host].action != NONE]
    log = runlog.RunLog()
    if not todo:
        if plans:
            click.echo(f"==> every app host serves release {next(iter(plans.values())).target}; nothing to activate",
                       err=True)
        return log
    topology = Topology(inventory)
    serial = int(topology.vars_of(todo[0].host)["app_serial"])
    lbs = inventory.hosts_in(Group.LB)
    can_drain = len(app_hosts) > 1 and bool(lbs)
    if not can_drain and any(plan.action == "restart" for plan in todo):
        click.echo("warning: one app host and nothing to fail over to: its Gunicorn restarts in place and the "
                   "requests in flight during the restart fail; add a second app host for deploys without errors",
                   err=True)
    drained: list[str] = []

    def rotate(entries: list[str]) -> None:
        nonlocal log, drained
        what = f"{', '.join(entries)} out of rotation" if entries else "every app host back in rotation"
        click.echo(f"==> lb: {what}", err=True)
        log = log + run(inventory, (str(Group.LB),), deploy_file=DRAIN_FILE,
                        extra_env=env | {DRAIN_ENV: ",".join(entries)}, what=f"the lb ({what})")
        drained = entries

    groups = batches(todo, serial, len(app_hosts))
    done: list[str] = []
    for number, batch in enumerate(groups, 1):
        names = [plan.host for plan in batch]
        for plan in batch:
            click.echo(f"==> [{number}/{len(groups)}] {plan.host}: {plan.action} to release {plan.target} "
                       f"({'; '.join(plan.reasons)})", err=True)
        entries = [_upstream(topology, host) for host in names] if any(
            plan.action in DRAINING_ACTIONS for plan in batch) else []
        if can_drain and entries != drained:
            rotate(entries)
        try:
            log = log + run(inventory, tuple(names), deploy_file=ROLL_FILE,
                            extra_env=env | {ROLL_ENV: str(plan_file)}, what=f"activating {', '.join(names)}")
        except DeployFailed as failure:
            log = log + failure.log
            stranded = [plan.host for plan in batch if any(
                NOT_REVERTED in op.error for op in failure.log.with_status(runlog.FAILED) if op.host == plan.host)]
            if can_drain:
                rotate([_upstream(topology, host) for host in stranded])
            raise DeployFailed(_stopped(failure, done, batch, stranded, todo, plans), (prior or runlog.RunLog()) + log)
        done.extend(names)
    if can_drain and drained:
        rotate([])
    return log


def _stopped(failure: click.ClickException, done: list[str], batch: list[Plan], stranded: list[str],
             todo: list[Plan], plans: dict[str, Plan]) -> str:
    """What each app host serves after a failed activation, so that nobody has to guess."""
    target = batch[0].target
    lines = [failure.message, "app hosts now:"]
    for plan in plans.values():
        if plan.host in done:
            lines.append(f"  {plan.host}: release {target} (activated before the failure)")
        elif plan.host in stranded:
            lines.append(f"  {plan.host}: OUT OF ROTATION: neither {target} nor {plan.previous} got ready; "
                         "see the error above, then deploy again")
        elif plan.host in {p.host for p in batch}:
            lines.append(f"  {plan.host}: release {plan.previous} (put back after {target} failed; in rotation)")
        elif plan in todo:
            lines.append(f"  {plan.host}: release {plan.previous} (not activated)")
        else:
            lines.append(f"  {plan.host}: release {plan.target} (unchanged)")
    if done:
        lines.append(f"the app hosts serve two releases ({target} and the previous one): fix the cause and deploy "
                     "again, or run `tsdeploy rollback` to put every host on the previous release")
    return "\n".join(lines)
