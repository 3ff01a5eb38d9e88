"""End to end: `tsdeploy verify` against the deployed split lab (db1, backup1, cache1, app1, app2, lb1).

A fresh deploy verifies with zero failures and writes the three reports without a secret in them; verify
changes nothing on the hosts (managed files keep their mtimes, a dry-run deploy plans no change); an
auditor without the vault password gets "not run", never "pass", for checks that need a secret; hosts broken
on purpose fail exactly the controls the breakage violates; a re-deploy restores them and verify passes.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import pytest

from tsdeploy import ROOT, controls, deployment, inventory
from tsdeploy.lab.inventory import OPTIONAL_VAULT_REFERENCES, VAULT_REFERENCES
from tsdeploy.context import build_context
from tsdeploy.manifest import files_for
from tsdeploy.verify import REPORT_FILES, secret_values

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

TSDEPLOY = str(pathlib.Path(sys.executable).parent / "tsdeploy")

# Each deliberate breakage and the controls it violates (and no others).
BREAKAGES = {
    "pg_hba line 'host all all 0.0.0.0/0 scram-sha-256' + reload": {
        "CIS-PG-5.8", "CIS-PG-5.9", "CIS-PG-5.10", "CIS-PG-5.11", "ts-drift-01"},
    "work_mem changed in the tuning drop-in + reload": {"ts-pg-tuning", "ts-drift-01"},
    "Redis stopped": {"ts-redis-01", "ts-redis-02", "ts-redis-03", "ts-redis-04", "ts-redis-07", "ts-fw-03"},
    "app env file chmod 0644": {"ts-app-04"},
    "the cache host's CA certificate replaced by one expiring in 5 days": {"ts-tls-01", "ts-drift-01"},
    "the app host's journald drop-in removed + journald restarted": {"ts-log-01", "ts-drift-01"},
    "logrotate removed from the lb": {"ts-log-02"},
    "a table handed to the app's runtime role (ALTER TABLE saved_jobs OWNER TO it)": {
        "ts-pg-owner-role", "ts-pg-runtime-role"},
}


def ssh(lab, host: str, command: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ssh", "-F", str(lab.ssh_config), host, command], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"{host}: `{command}` failed: {result.stderr}"
    return result


def run_verify(inventory_dir: pathlib.Path, report: pathlib.Path, *extra: str) -> tuple[int, float]:
    started = time.monotonic()
    process = subprocess.run([TSDEPLOY, "verify", str(inventory_dir), "--report", str(report), *extra],
                             capture_output=True, text=True, check=False)
    return process.returncode, time.monotonic() - started


def rows(report: pathlib.Path) -> dict[str, controls.Row]:
    built = controls.build_rows(controls.load_catalogue(), controls.read_junit(report / "junit.xml"))
    return {row.control.id: row for row in built}


def managed_mtimes(lab) -> dict[str, str]:
    """host:path -> mtime (ns) of every file the deploy manages, read on the hosts."""
    loaded = inventory.load(lab.inventory_dir)
    mtimes = {}
    for host in loaded.hosts:
        paths = [item.dest(ctx) for ctx in [build_context(loaded, host)] for item in files_for(ctx)]
        out = ssh(lab, host, "sudo stat -c '%n %.9Y' " + " ".join(paths)).stdout
        mtimes |= {f"{host}:{line.split()[0]}": line.split()[1] for line in out.splitlines()}
    return mtimes


def dry_run_changes(lab) -> list[str]:
    """Operations a `pyinfra --dry` run of the deploy would change, as 'host: operation'."""
    loaded = inventory.load(lab.inventory_dir)
    env = dict(os.environ, TSDEPLOY_INVENTORY=str(loaded.path.resolve()), PYINFRA_PROGRESS="off",
               ANSIBLE_VAULT_PASSWORD_FILE=str(loaded.vault_password_file))
    process = subprocess.run(deployment.pyinfra_command((), False) + ["--dry", "--json"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    plan = json.loads(process.stdout)["plan"]
    return [f"{host}: {op['name']}" for op in plan for host in op["hosts_with_change"]]


@pytest.fixture(scope="module")
def first_verify(deployed_split: Deployment, tmp_path_factory: pytest.TempPathFactory) -> dict:
    lab = deployed_split.lab
    report = tmp_path_factory.mktemp("verify-report")
    before = managed_mtimes(lab)
    returncode, seconds = run_verify(lab.inventory_dir, report)
    statuses = [row.status for row in rows(report).values()]
    checks = ElementTree.parse(report / "junit.xml").getroot().iter("testcase")
    print(f"verify of the split lab took {seconds:.0f} s: {len(list(checks))} checks; controls: "
          + ", ".join(f"{statuses.count(status)} {status}" for status in sorted(set(statuses))))
    return {"report": report, "returncode": returncode, "seconds": seconds, "before": before,
            "after": managed_mtimes(lab)}


def test_verify_of_a_fresh_deploy_exits_0_with_zero_failed_controls(first_verify: dict) -> None:
    failed = controls.failed_controls(rows(first_verify["report"]).values())
    assert (first_verify["returncode"], failed) == (0, [])


def test_verify_writes_junit_html_and_a_summary_listing_every_p1_control(first_verify: dict) -> None:
    report = first_verify["report"]
    assert all((report / name).stat().st_size > 0 for name in REPORT_FILES)
    assert "<html" in (report / "report.html").read_text()[:2000].lower()
    summary = (report / "summary.md").read_text()
    p1 = [control.id for control in controls.load_catalogue() if control.priority == "P1"]
    missing = [cid for cid in p1 if f"| {cid} | P1 |" not in summary]
    assert missing == []


def test_no_deploy_secret_appears_in_any_report(first_verify: dict, deployed_split: Deployment) -> None:
    secrets = secret_values(inventory.load(deployed_split.lab.inventory_dir))
    # Every secret the lab's vault holds is searched for; a rotation earlier in the run adds its fallback.
    assert set(VAULT_REFERENCES) <= set(secrets) <= set(VAULT_REFERENCES) | set(OPTIONAL_VAULT_REFERENCES)
    found = [(name, file) for file in REPORT_FILES for name, value in secrets.items()
             if value in (first_verify["report"] / file).read_text()]
    assert found == []


def test_verify_leaves_every_managed_file_untouched(first_verify: dict) -> None:
    assert first_verify["before"] and first_verify["after"] == first_verify["before"]


def test_a_dry_run_deploy_after_verify_plans_no_change(first_verify: dict, deployed_split: Deployment) -> None:
    assert dry_run_changes(deployed_split.lab) == []


def test_an_auditor_without_the_vault_gets_not_run_for_checks_needing_a_secret(
        first_verify: dict, deployed_split: Deployment, tmp_path: pathlib.Path) -> None:
    returncode, _ = run_verify(deployed_split.lab.inventory_dir, tmp_path, "--no-secrets", "--limit", "cache")
    result = rows(tmp_path)
    assert returncode == 0
    assert result["ts-redis-04"].status == "not run"
    assert any("needs secret redis_app_password" in note for note in result["ts-redis-04"].notes)
    assert result["ts-redis-03"].status == "pass"  # unauthenticated PING needs no secret
    assert not any(row.status == "pass" and row.skipped for row in result.values())


@pytest.fixture(scope="module")
def broken_verify(first_verify: dict, deployed_split: Deployment, tmp_path_factory: pytest.TempPathFactory):
    lab = deployed_split.lab
    loaded = inventory.load(lab.inventory_dir)
    pg = build_context(loaded, loaded.hosts_in("db")[0])["postgres"]
    db, cache, app, lb = (loaded.hosts_in(group)[0] for group in ("db", "cache", "app", "lb"))
    env_file = build_context(loaded, app)["app"]["env_file"]
    ssh(lab, db, f"echo 'host all all 0.0.0.0/0 scram-sha-256' | sudo tee -a {pg['conf_dir']}/pg_hba.conf"
                 f" >/dev/null && sudo sed -i -E 's/^work_mem = .*/work_mem = 1MB/' "
                 f"{pg['conf_dir']}/conf.d/50-tsdeploy.conf && sudo systemctl reload {pg['service']}")
    ssh(lab, db, f"sudo runuser -u postgres -- psql -X -q -d {pg['db_name']} -c "
                 f"'ALTER TABLE saved_jobs OWNER TO {pg['app_user']}'")
    ssh(lab, cache, "sudo systemctl stop redis-server")
    ssh(lab, cache, "sudo openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 5 "
                    "-subj /CN=expiring -keyout /dev/null -out /etc/ssl/tsdeploy/ca.pem 2>/dev/null")
    ssh(lab, app, f"sudo chmod 0644 {env_file}")
    ssh(lab, app, "sudo rm /etc/systemd/journald.conf.d/60-tsdeploy.conf && sudo systemctl restart systemd-journald")
    ssh(lab, lb, "sudo DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq logrotate >/dev/null")
    report = tmp_path_factory.mktemp("verify-broken")
    returncode, _ = run_verify(lab.inventory_dir, report)
    return {"report": report, "returncode": returncode}


def test_verify_of_broken_hosts_fails_exactly_the_controls_they_violate(broken_verify: dict) -> None:
    expected = set().union(*BREAKAGES.values())
    failed = set(controls.failed_controls(rows(broken_verify["report"]).values()))
    assert broken_verify["returncode"] == 1
    assert failed == expected


def _failed_checks(report: pathlib.Path) -> set[str]:
    """Names of the failed checks in the junit report, with their parameters: `test_x[host]`."""
    return {case.get("name", "") for case in ElementTree.parse(report / "junit.xml").iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None}


def test_the_certificate_journal_and_logrotate_breakages_fail_on_the_broken_host_only(
        broken_verify: dict, deployed_split: Deployment) -> None:
    loaded = inventory.load(deployed_split.lab.inventory_dir)
    cache, app, lb = (loaded.hosts_in(group)[0] for group in ("cache", "app", "lb"))
    failed = _failed_checks(broken_verify["report"])

    def failing(test: str) -> set[str]:
        return {name.removeprefix(f"{test}[").removesuffix("]") for name in failed if name.startswith(f"{test}[")}

    assert failing("test_certificate_is_valid_for_at_least_14_more_days") == {f"{cache}:/etc/ssl/tsdeploy/ca.pem"}
    assert failing("test_journald_keeps_the_journal_on_disk_within_the_inventorys_bounds") == {app}
    for test in ("test_logrotate_is_installed", "test_logrotates_daily_timer_is_enabled_and_active",
                 "test_logrotate_accepts_every_rule_of_the_host"):
        assert failing(test) == {lb}, test
    drift = failing("test_managed_file_equals_what_the_deploy_renders")
    assert {f"{cache}:/etc/ssl/tsdeploy/ca.pem", f"{app}:/etc/systemd/journald.conf.d/60-tsdeploy.conf"} <= drift


def test_the_drift_failure_names_the_file_and_hides_secrets(broken_verify: dict) -> None:
    junit = (broken_verify["report"] / "junit.xml").read_text()
    assert "pg_hba.conf differs from postgres/pg_hba.conf.j2" in junit
    assert "+host all all 0.0.0.0/0 scram-sha-256" in junit


def test_a_redeploy_restores_the_hosts_and_verify_passes_again(broken_verify: dict, deployed_split: Deployment,
                                                               redeploy, tmp_path: pathlib.Path) -> None:
    redeploy(deployed_split.lab)
    returncode, _ = run_verify(deployed_split.lab.inventory_dir, tmp_path)
    assert controls.failed_controls(rows(tmp_path).values()) == []
    assert returncode == 0
