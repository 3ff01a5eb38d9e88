"""The auditor summary: JUnit XML test cases folded into one row per control of the catalogue."""

from __future__ import annotations

import pathlib

import pytest

from tsdeploy import controls
from tsdeploy.controls import CaseResult, Control

CATALOGUE = [
    Control("sshd-27", "no password logins", "dev-sec sshd-27", "P1"),
    Control("nginx-09", "X-XSS-Protection 0", "dev-sec nginx-09", "P2", deviation="header is deprecated"),
    Control("ts-redis-04", "app user NOPERM", "baseline", "P1"),
    Control("ts-drift-01", "no drift", "ours: no drift", "P1"),
]

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.infra.test_common" name="test_sshd[db1-PasswordAuthentication]">
    <properties><property name="control" value="sshd-27"/></properties>
  </testcase>
  <testcase classname="tests.infra.test_common" name="test_sshd[app1-PasswordAuthentication]">
    <properties><property name="control" value="sshd-27"/></properties>
    <failure message="AssertionError: app1: sshd passwordauthentication is 'yes'&#10;second line">trace</failure>
  </testcase>
  <testcase classname="tests.infra.test_nginx" name="test_xss[lb1]">
    <properties><property name="control" value="nginx-09"/></properties>
  </testcase>
  <testcase classname="tests.infra.test_redis" name="test_noperm[cache1-KEYS]">
    <properties><property name="control" value="ts-redis-04"/></properties>
    <skipped type="pytest.skip" message="needs secret redis_app_password (no vault password available)">s</skipped>
  </testcase>
  <testcase classname="tests.infra.test_redis" name="test_acl_file[cache1]">
    <properties><property name="control" value="ts-redis-04"/></properties>
  </testcase>
</testsuite></testsuites>
"""


@pytest.fixture
def rows(tmp_path: pathlib.Path) -> dict[str, controls.Row]:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    return {row.control.id: row for row in controls.build_rows(CATALOGUE, controls.read_junit(path))}


def test_read_junit_returns_each_case_with_its_controls_outcome_and_first_message_line(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    cases = controls.read_junit(path)
    assert [(c.controls, c.outcome) for c in cases] == [
        (("sshd-27",), "passed"), (("sshd-27",), "failed"), (("nginx-09",), "passed"),
        (("ts-redis-04",), "skipped"), (("ts-redis-04",), "passed")]
    assert cases[1].message == "AssertionError: app1: sshd passwordauthentication is 'yes'"


def test_a_control_with_one_failing_host_fails_and_names_the_case(rows):
    assert rows["sshd-27"].status == "fail"
    assert (rows["sshd-27"].passed, rows["sshd-27"].failed) == (1, 1)
    assert any("test_sshd[app1-PasswordAuthentication]" in note for note in rows["sshd-27"].notes)


def test_a_passing_deviation_is_reported_as_deviation_with_its_reason_never_as_pass(rows):
    assert rows["nginx-09"].status == "deviation"
    assert "deviation: header is deprecated" in rows["nginx-09"].notes


def test_a_control_with_a_skipped_check_is_not_run_with_the_reason_even_if_other_checks_passed(rows):
    assert rows["ts-redis-04"].status == "not run"
    assert "not run: needs secret redis_app_password (no vault password available)" in rows["ts-redis-04"].notes


def test_a_control_without_any_collected_check_is_listed_as_not_run(rows):
    assert rows["ts-drift-01"].status == "not run"
    assert any("no check was collected" in note for note in rows["ts-drift-01"].notes)


def test_a_case_naming_a_control_missing_from_the_catalogue_is_an_error():
    case = CaseResult("t::x", ("postgres-99",), "passed")
    with pytest.raises(ValueError, match="postgres-99"):
        controls.build_rows(CATALOGUE, [case])


def test_summary_has_one_table_row_per_control_and_the_status_counts(rows):
    text = controls.render_summary(list(rows.values()), title="Verify report: lab")
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Control")]
    assert len(table) == len(CATALOGUE)
    assert "pass 0 · fail 1 · deviation 1 · not run 2" in text


def test_failed_controls_lists_only_failures(rows):
    assert controls.failed_controls(rows.values()) == ["sshd-27"]


def test_the_catalogue_loads_and_lists_every_p1_control_of_the_security_baseline():
    ids = {control.id for control in controls.load_catalogue()}
    # The public controls the deploy commits to meet (dev-sec / CIS ids) and the systemd-analyze gate: dropping
    # one from the catalogue would silently drop it from the auditors' summary.
    for required in ("postgres-06", "postgres-07", "postgres-10", "postgres-11", "postgres-13", "postgres-14",
                     "CIS-PG-5.2", "CIS-PG-4.10", "CIS-PG-5.8", "CIS-PG-5.9", "CIS-PG-5.10", "CIS-PG-5.11",
                     "CIS-PG-6.8", "sshd-27", "sshd-06", "sshd-28", "sshd-19", "sshd-05", "nginx-09", "ts-app-02"):
        assert required in ids


def test_a_catalogue_entry_without_a_priority_is_rejected_with_the_field_named(tmp_path):
    path = tmp_path / "controls.yml"
    path.write_text("controls:\n  - id: x-01\n    title: t\n    baseline: b\n")
    with pytest.raises(ValueError, match=r"x-01.*missing 'priority'"):
        controls.load_catalogue(path)
