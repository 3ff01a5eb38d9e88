"""The rolling deploy: what an app host needs (decide), batches, the activation script, the run log, the command.

`decide()` and `batches()` are pure. The activation script is rendered with a real app context and parsed
by bash. The run log is written by a real pyinfra run (the command line `tsdeploy deploy` uses) against two
hosts that both execute locally: a throwaway connector, registered through an entry point on PYTHONPATH,
names two `@local`-style hosts, because pyinfra's own `@local` connector allows only one.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import textwrap

import click
import pytest

from roles.app import manifest
from roles.app.live import CONFIGURE, NONE, RELOAD, RESTART, START, Plan, decide
from roles.app.roll import CANDIDATE, NOT_REVERTED, PREVIOUS, REVERTED, script
from test_inventory import write_inventory
from tsdeploy import ROOT, deployment, rolling, runlog
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.topology import Topology

ENV = "/etc/talentsphere/env"
CONF = "/etc/talentsphere/gunicorn.conf.py"
UNIT = "/etc/systemd/system/talentsphere.service"
FLUSH_SERVICE = "/etc/systemd/system/talentsphere-flush-views.service"
FLUSH_TIMER = "/etc/systemd/system/talentsphere-flush-views.timer"
WANTED = {ENV: "e" * 64, CONF: "c" * 64, UNIT: "u" * 64, FLUSH_SERVICE: "s" * 64, FLUSH_TIMER: "t" * 64}

OLD, NEW = "0ld0ld0ld0ld", "9e99e99e99e9"
REQUIREMENTS = "r" * 64


def live(*, current: str | None = OLD, active: bool = True, serving: tuple[str | None, ...] | None = None,
         sums: dict[str, str | None] | None = None, requirements: str | None = REQUIREMENTS) -> dict:
    """An AppLive fact: by default Gunicorn serves OLD with every file as wanted."""
    return {"current": current, "active": active,
            "serving": list(serving if serving is not None else (current,) * 4),
            "sums": dict(WANTED) | (sums or {}), "requirements": requirements}


def plan_for(state: dict, target: str = NEW, requirements: str = REQUIREMENTS) -> Plan:
    return decide("app1", state, WANTED, target, requirements, service_unit=UNIT, env_file=ENV, gunicorn_conf=CONF)


# --- decide(): the action an app host needs ------------------------------------------------------------------------


def test_a_gunicorn_that_is_not_running_is_started() -> None:
    plan = plan_for(live(current=None, active=False, serving=(), requirements=None,
                         sums={path: None for path in WANTED}))
    assert plan.action == START
    assert plan.reasons[0] == "Gunicorn is not running"
    assert plan.previous is None


def test_a_stopped_gunicorn_on_the_target_release_is_started_not_reloaded() -> None:
    plan = plan_for(live(current=NEW, active=False, serving=(None,) * 4))
    assert (plan.action, plan.reasons) == (START, ("Gunicorn is not running",))


@pytest.mark.parametrize("path", [ENV, UNIT, CONF])
def test_a_changed_env_file_unit_or_gunicorn_conf_restarts_naming_the_file(path: str) -> None:
    plan = plan_for(live(current=NEW, sums={path: "0" * 64}))
    assert plan.action == RESTART
    assert plan.reasons == (f"{path} changed",)
    assert plan.changed_files == (path,)


def test_another_release_with_the_same_dependencies_is_a_reload_from_the_old_release_to_the_new() -> None:
    plan = plan_for(live())
    assert plan.action == RELOAD
    assert plan.reasons == (f"release {OLD} -> {NEW}",)
    assert (plan.previous, plan.target, plan.changed_files) == (OLD, NEW, ())


def test_another_release_under_preload_restarts_because_a_hup_would_keep_the_masters_code() -> None:
    plan = decide("app1", live(), WANTED, NEW, REQUIREMENTS, service_unit=UNIT, env_file=ENV, gunicorn_conf=CONF,
                  preload=True)
    assert plan.action == RESTART
    assert plan.reasons[0] == f"release {OLD} -> {NEW}"
    assert "app_preload" in plan.reasons[1]


def test_another_release_with_other_pinned_dependencies_restarts_naming_the_dependencies() -> None:
    plan = plan_for(live(requirements="f" * 64))
    assert plan.action == RESTART
    assert any("pinned dependencies" in reason and OLD in reason and NEW in reason for reason in plan.reasons)
    assert f"release {OLD} -> {NEW}" in plan.reasons


def test_a_new_release_and_a_changed_gunicorn_conf_restart_once_with_both_reasons() -> None:
    plan = plan_for(live(sums={CONF: "0" * 64}))
    assert plan.action == RESTART
    assert plan.reasons == (f"{CONF} changed", f"release {OLD} -> {NEW}")


def test_workers_serving_another_release_than_current_after_an_interrupted_deploy_are_reloaded() -> None:
    plan = plan_for(live(current=NEW, serving=(OLD, NEW, OLD, NEW)))
    assert plan.action == RELOAD
    assert len(plan.reasons) == 1
    assert OLD in plan.reasons[0] and "interrupted deploy" in plan.reasons[0]
    assert plan.previous == NEW


def test_only_a_changed_flush_unit_is_configured_without_touching_gunicorn() -> None:
    plan = plan_for(live(current=NEW, sums={FLUSH_TIMER: "0" * 64}))
    assert plan.action == CONFIGURE
    assert plan.reasons == (f"{FLUSH_TIMER} changed",)


def test_nothing_differs_means_no_action_and_no_reason() -> None:
    plan = plan_for(live(current=NEW))
    assert (plan.action, plan.reasons, plan.changed_files) == (NONE, (), ())


def test_changed_files_lists_exactly_the_paths_whose_live_content_differs() -> None:
    plan = plan_for(live(current=NEW, sums={CONF: "0" * 64, FLUSH_SERVICE: None}))
    assert plan.changed_files == (CONF, FLUSH_SERVICE)
    assert plan.action == RESTART  # gunicorn.conf.py decides; the flush unit lands with it


def test_a_plan_survives_its_json_round_trip_through_the_plan_file(tmp_path: pathlib.Path) -> None:
    plan = plan_for(live(requirements="f" * 64, sums={ENV: None}))
    assert Plan.from_json(json.loads(json.dumps(plan.as_json()))) == plan
    plans_file = tmp_path / "plans.json"
    plans_file.write_text(json.dumps({plan.host: plan.as_json()}))
    assert rolling.read_plans(plans_file) == {"app1": plan}
    assert rolling.read_plans(tmp_path / "none.json") == {}


# --- rolling.batches(): how many app hosts leave the rotation at a time ---------------------------------------------


def _plans(*hosts: str) -> list[Plan]:
    return [Plan(host, RELOAD, (f"release {OLD} -> {NEW}",), NEW, OLD, ()) for host in hosts]


def _hosts(groups: list[list[Plan]]) -> list[list[str]]:
    return [[plan.host for plan in batch] for batch in groups]


def test_serial_one_activates_one_host_per_batch() -> None:
    assert _hosts(rolling.batches(_plans("app1", "app2", "app3"), 1, 3)) == [["app1"], ["app2"], ["app3"]]


@pytest.mark.parametrize("serial", [3, 4, 100])
def test_serial_at_or_above_the_app_hosts_is_capped_so_that_one_app_host_stays_in_rotation(serial: int) -> None:
    assert _hosts(rolling.batches(_plans("app1", "app2", "app3"), serial, 3)) == [["app1", "app2"], ["app3"]]


def test_the_cap_counts_every_app_host_not_only_those_with_something_to_do() -> None:
    assert _hosts(rolling.batches(_plans("app2", "app4"), 4, 4)) == [["app2", "app4"]]


@pytest.mark.parametrize("serial", [1, 2, 10])
def test_a_single_app_host_is_activated_in_a_batch_of_one(serial: int) -> None:
    assert _hosts(rolling.batches(_plans("app1"), serial, 1)) == [["app1"]]


# --- tsdeploy deploy's command line and --allow-restart -------------------------------------------------------------


def test_pyinfra_runs_fail_stop_so_no_host_goes_on_after_another_failed() -> None:
    command = deployment.pyinfra_command((), False)
    assert command[command.index("--fail-percent") + 1] == "0"
    assert "-y" in command


def test_limit_and_diff_are_passed_to_pyinfra() -> None:
    command = deployment.pyinfra_command(("app1", "lb"), True)
    assert command[-5:] == ["--limit", "app1", "--limit", "lb", "--diff"]


@pytest.mark.parametrize(("value", "expected"), [
    ("", ""), (None, ""), ("postgres", "postgres"), (" redis , postgres ", "redis,postgres"), ("postgres,", "postgres"),
])
def test_allow_restart_accepts_the_restartable_roles(value: str | None, expected: str) -> None:
    assert deployment._allow_restart(value) == expected


def test_allow_restart_refuses_an_unknown_name_naming_it_and_the_allowed_names() -> None:
    with pytest.raises(click.BadParameter) as caught:
        deployment._allow_restart("postgres,postgresql,nginx")
    message = caught.value.format_message()
    assert "postgresql, nginx cannot be restarted" in message
    assert "postgres, redis" in message
    assert "--allow-restart" in message


# --- roles/app/roll.py: the activation script -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_context(tmp_path_factory: pytest.TempPathFactory) -> dict:
    ctx = build_context(load(write_inventory(tmp_path_factory.mktemp("rolling"))), "app1")
    return dict(ctx["app"])


def _line(lines: list[str], text: str, *, last: bool = False) -> int:
    found = [index for index, line in enumerate(lines) if text in line]
    assert found, f"no line of the script contains {text!r}"
    return found[-1] if last else found[0]


def _bash_parses(text: str) -> None:
    parsed = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr


def test_a_reload_checks_the_release_switches_current_then_hups_and_reverts_to_the_previous_release(
        app_context: dict) -> None:
    plan = Plan("app1", RELOAD, (f"release {OLD} -> {NEW}",), NEW, OLD, ())
    text = script(app_context, plan, "app1")
    _bash_parses(text)
    lines = text.splitlines()
    releases = app_context["releases_dir"]
    check = _line(lines, "--check-config")
    switch = _line(lines, f"ln -sfn {releases}/{NEW} ")
    reload = _line(lines, f"systemctl reload {manifest.SERVICE}")
    wait = _line(lines, f"{NEW} 3; then")
    switch_back = _line(lines, f"ln -sfn {releases}/{OLD} ")
    assert f"{releases}/{NEW}/bin/python" in lines[check]
    assert check < switch < reload < wait < switch_back
    assert all("mv " not in line for line in lines[:check]), "nothing moves before the check"
    assert not any(CANDIDATE in line for line in lines), "a reload with no changed file stages nothing"
    restart_previous = _line(lines, f"systemctl restart {manifest.SERVICE}")
    assert switch_back < restart_previous < _line(lines, REVERTED)
    assert _line(lines, REVERTED) < _line(lines, NOT_REVERTED)


def test_a_restart_with_staged_files_checks_the_candidates_backs_up_lands_and_restores_on_failure(
        app_context: dict) -> None:
    staged = (ENV, CONF, UNIT)
    plan = Plan("app1", RESTART, tuple(f"{path} changed" for path in staged), NEW, OLD, staged)
    text = script(app_context, plan, "app1")
    _bash_parses(text)
    lines = text.splitlines()
    check = _line(lines, "--check-config")
    # The check runs the release with the files it will run with: the candidates.
    assert f"EnvironmentFile={ENV}{CANDIDATE}" in lines[check]
    assert f"--config {CONF}{CANDIDATE}" in lines[check]
    for path in staged:
        missing = _line(lines, f"[ -f {path}{CANDIDATE} ] || fail")
        backup = _line(lines, f"cp -a {path} {path}{PREVIOUS}")
        land = _line(lines, f"mv -f {path}{CANDIDATE} {path}")
        restore = _line(lines, f"mv -f {path}{PREVIOUS} {path}")
        assert missing < check < backup < land < restore, path
    first_move = min(index for index, line in enumerate(lines) if re.search(r"\bmv\b", line))
    assert check < first_move
    last_land = max(_line(lines, f"mv -f {path}{CANDIDATE} {path}") for path in staged)
    daemon_reload = _line(lines, "systemctl daemon-reload")
    switch = _line(lines, f"ln -sfn {app_context['releases_dir']}/{NEW} ")
    restart = _line(lines, f"systemctl restart {manifest.SERVICE}")
    wait = _line(lines, f"{NEW} 3; then")
    assert last_land < daemon_reload < switch < restart < wait
    # Once ready, the backups go; otherwise the files and `current` go back and the previous release restarts.
    assert wait < lines.index(f"  rm -f {ENV}{PREVIOUS}") < lines.index("  exit 0")
    restores = [_line(lines, f"mv -f {path}{PREVIOUS} {path}") for path in staged]
    switch_back = _line(lines, f"ln -sfn {app_context['releases_dir']}/{OLD} ")
    assert wait < min(restores) and max(restores) < _line(lines, "systemctl daemon-reload", last=True) < switch_back
    assert switch_back < _line(lines, f"systemctl restart {manifest.SERVICE}", last=True) < _line(lines, REVERTED)


def test_only_flush_units_changed_lands_them_and_leaves_gunicorn_alone(app_context: dict) -> None:
    plan = Plan("app1", CONFIGURE, (f"{FLUSH_TIMER} changed",), NEW, NEW, (FLUSH_TIMER,))
    text = script(app_context, plan, "app1")
    _bash_parses(text)
    assert f"mv -f {FLUSH_TIMER}{CANDIDATE} {FLUSH_TIMER}" in text
    assert f"systemctl restart {manifest.FLUSH_TIMER}" in text
    assert manifest.SERVICE not in text.replace(manifest.FLUSH_TIMER, "")
    assert "ln -sfn" not in text and "Gunicorn untouched" in text


def test_a_first_start_has_no_previous_release_to_switch_back_to(app_context: dict) -> None:
    plan = Plan("app1", START, ("Gunicorn is not running",), NEW, None, (ENV,))
    text = script(app_context, plan, "app1")
    _bash_parses(text)
    assert f"systemctl enable --now {manifest.SERVICE}" in text
    assert text.count("ln -sfn") == 1
    assert text.splitlines()[-1].startswith("fail ") and NOT_REVERTED in text.splitlines()[-1]


# --- the run log, written by a real pyinfra run ---------------------------------------------------------------------

#: A connector that runs commands locally, like `@local`, under any host name: `@twin/alpha`, `@twin/beta`.
TWIN_CONNECTOR = '''
from pyinfra.connectors.local import LocalConnector


class TwinLocalConnector(LocalConnector):
    @staticmethod
    def make_names_data(name=None):
        yield name, {}, []
'''

DEPLOY = '''
from pyinfra import host
from pyinfra.operations import server

from tsdeploy import runlog

runlog.record()

server.shell(name=f"Prepare {host.name}", commands=["true"])
failing = "echo 'first line of the error' >&2; echo 'the reason on {name}' >&2; exit 3"
server.shell(name=f"Migrate on {host.name}", commands=[failing.format(name=host.name) if host.name == "beta" else "true"])
server.shell(name=f"Switch {host.name}", commands=["true"])
'''


@pytest.fixture(scope="module")
def two_host_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, runlog.RunLog]:
    """The deploy above, run with tsdeploy's pyinfra command line on hosts alpha and beta (beta fails step 2)."""
    root = tmp_path_factory.mktemp("runlog")
    site = root / "site"
    (site / "twin_local-0.dist-info").mkdir(parents=True)
    (site / "twin_local.py").write_text(TWIN_CONNECTOR)
    (site / "twin_local-0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: twin-local\nVersion: 0\n")
    (site / "twin_local-0.dist-info" / "entry_points.txt").write_text(
        "[pyinfra.connectors]\ntwin = twin_local:TwinLocalConnector\n")
    inventory = root / "inventory.py"
    inventory.write_text('hosts = ["@twin/alpha", "@twin/beta"]\n')
    deploy_file = root / "deploy.py"
    deploy_file.write_text(textwrap.dedent(DEPLOY))
    log_path = root / "runlog.json"
    command = deployment.pyinfra_command((), False, deploy_file)
    command[1] = str(inventory)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{site}", PYINFRA_PROGRESS="off",
               **{runlog.RUNLOG_ENV: str(log_path)})
    process = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120)
    return process, runlog.read(log_path)


def _ops(log: runlog.RunLog, host: str) -> list[tuple[str, str]]:
    return [(op.name, op.status) for op in log.operations if op.host == host]


def test_the_run_log_names_each_operation_with_its_own_hosts_values(two_host_run) -> None:
    process, log = two_host_run
    assert log.hosts == ["alpha", "beta"], process.stderr[-3000:]
    assert [name for name, _ in _ops(log, "alpha")] == ["Prepare alpha", "Migrate on alpha", "Switch alpha"]
    assert [name for name, _ in _ops(log, "beta")] == ["Prepare beta", "Migrate on beta", "Switch beta"]


def test_a_failure_stops_every_host_before_its_next_operation_and_keeps_the_stderr_as_reason(two_host_run) -> None:
    process, log = two_host_run
    assert process.returncode != 0
    assert _ops(log, "alpha") == [("Prepare alpha", runlog.CHANGED), ("Migrate on alpha", runlog.CHANGED),
                                  ("Switch alpha", runlog.NOT_RUN)]
    assert _ops(log, "beta") == [("Prepare beta", runlog.CHANGED), ("Migrate on beta", runlog.FAILED),
                                 ("Switch beta", runlog.NOT_RUN)]
    [failed] = log.with_status(runlog.FAILED)
    assert failed.error == "first line of the error\nthe reason on beta"
    assert log.failed


def test_the_run_log_reads_as_a_per_host_table_failures_summary_and_changes(two_host_run) -> None:
    _, log = two_host_run
    assert log.table() == ["  alpha: 2 changed, 0 unchanged, 0 failed, 1 not run",
                           "  beta: 1 changed, 0 unchanged, 1 failed, 1 not run"]
    assert log.failures() == [
        "  beta: Migrate on beta failed:",
        "      first line of the error",
        "      the reason on beta",
        "  alpha: 1 operations not run (the deploy stopped at the first failure)",
        "  beta: 1 operations not run (the deploy stopped at the first failure)",
    ]
    assert log.summary == "changed: 3 operations on 2 hosts"
    assert log.changes == ["alpha: Prepare alpha", "alpha: Migrate on alpha", "beta: Prepare beta"]


def test_run_logs_of_several_runs_add_up_per_host() -> None:
    first = runlog.RunLog((runlog.Operation("db1", "Write postgresql.conf", runlog.UNCHANGED),
                           runlog.Operation("app1", "Stage env", runlog.CHANGED)))
    second = runlog.RunLog((runlog.Operation("app1", "Activate release", runlog.CHANGED),))
    total = runlog.merge([first, second])
    assert total == first + second
    assert total.table() == ["  db1: 0 changed, 1 unchanged, 0 failed, 0 not run",
                             "  app1: 2 changed, 0 unchanged, 0 failed, 0 not run"]
    assert total.summary == "changed: 2 operations on 1 hosts"
    assert not total.failed and total.failures() == []


def test_a_run_that_died_before_writing_its_log_reads_as_empty(tmp_path: pathlib.Path) -> None:
    assert runlog.read(tmp_path / "missing.json") == runlog.RunLog()
    (tmp_path / "torn.json").write_text('{"hosts": {"app1": [')
    assert runlog.read(tmp_path / "torn.json").operations == ()



def test_the_server_a_rolling_deploy_drains_is_the_one_the_lb_site_lists_for_that_app_host(
        tmp_path: pathlib.Path) -> None:
    inventory = load(write_inventory(tmp_path))
    upstream = build_context(inventory, inventory.hosts_in("lb")[0])["nginx"]["upstream"]
    drained = [rolling._upstream(Topology(inventory), host) for host in inventory.hosts_in("app")]
    assert drained == upstream and len(set(drained)) == len(drained) == 2
