"""The alert rules (templates/monitor/alerts.yml): Prometheus's promtool accepts them, each alert fires and stays
quiet as its promtool unit tests say, every alert has such a test, and every metric the rules read is one that
Debian's exporters or the app really export: the exporters run here against a throwaway PostgreSQL (with a
streaming standby), Redis and TLS server, and the app's metrics come from its own registry.

Skipped without promtool, the exporters, root or the postgres account (`make system-deps` installs them).
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from exporter_metrics import exported_names, metric_names, needs_promtool

ROOT = pathlib.Path(__file__).parents[2]
RULES = ROOT / "templates" / "monitor" / "alerts.yml"
TESTS = ROOT / "tests" / "unit" / "data" / "alerts.test.yml"


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules_and_their_templates() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = subprocess.run(["promtool", "test", "rules", str(TESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_severity_and_summary() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert set(names) - tested == set(), "alerts no promtool test fires"
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_metric_names_are_read_from_expressions_without_labels_functions_or_ranges() -> None:
    assert metric_names('sum by (instance) (rate(a_total{status=~"5.."}[5m])) / on (instance) max(b) > 0.8'
                        ) == {"a_total", "b"}
    assert metric_names("probe_ssl_earliest_cert_expiry - time() < 14 * 86400") == {
        "probe_ssl_earliest_cert_expiry"}


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    yield from exported_names()


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_metric_an_alert_reads_is_exported_by_debians_exporters_or_the_app(rule: dict,
                                                                                 exported: set[str]) -> None:
    names = metric_names(rule["expr"])
    assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
    assert names - exported == set(), f"{rule['alert']} reads metrics nothing exports: {sorted(names - exported)}"
