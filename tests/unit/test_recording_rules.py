"""The recording rules (templates/monitor/recording.yml): promtool accepts them, each recorded series has the
value its promtool unit test works out by hand, names follow Prometheus's level:metric:operations convention,
and every metric an expression reads is one that Debian's exporters or the app really export (the exporters
run here against a throwaway PostgreSQL, Redis and TLS server; the app's metrics come from its registry), or a
series an earlier rule of the same group records.

Skipped without promtool, the exporters, root or the postgres account (`make system-deps` installs them).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from exporter_metrics import exported_names, metric_names, needs_promtool

ROOT = pathlib.Path(__file__).parents[2]
RULES = ROOT / "templates" / "monitor" / "recording.yml"
TESTS = ROOT / "tests" / "unit" / "data" / "recording.test.yml"
#: level:metric:operations, each part lower case (the metric part keeps its exporter's spelling).
NAME = re.compile(r"^[a-z_]+:[a-zA-Z0-9_]+:[a-z0-9_]+$")


def groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def rules() -> list[dict]:
    return [rule for group in groups() for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_recording_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_recorded_series_has_the_value_its_unit_test_works_out() -> None:
    result = subprocess.run(["promtool", "test", "rules", str(TESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_file_records_the_key_views_and_nothing_alerts() -> None:
    assert RULES.read_text().startswith("# managed by TalentSphere Deploy")
    assert all(set(rule) == {"record", "expr"} for rule in rules()), "recording rules only: no alert, no labels"
    assert 10 <= len(rules()) <= 15


def test_every_recorded_series_is_named_level_metric_operations_once() -> None:
    names = [rule["record"] for rule in rules()]
    assert len(names) == len(set(names))
    assert [name for name in names if not NAME.match(name)] == []


def test_every_recorded_series_has_a_unit_test_checking_its_value() -> None:
    tested = {case["expr"] for test in yaml.safe_load(TESTS.read_text())["tests"]
              for case in test.get("promql_expr_test", []) if case.get("exp_samples")}
    assert {rule["record"] for rule in rules()} - tested == set(), "recorded series no promtool test checks"


def test_a_rule_reads_only_series_recorded_before_it_in_its_own_group() -> None:
    # A group's rules run in order: a later rule, or one of another group, would be read a cycle late or not at all.
    for group in groups():
        earlier: set[str] = set()
        for rule in group["rules"]:
            recorded = {name for name in metric_names(rule["expr"]) if ":" in name}
            assert recorded <= earlier, f"{rule['record']} reads {sorted(recorded - earlier)} not recorded before it"
            earlier.add(rule["record"])


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    yield from exported_names()


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["record"])
def test_every_metric_a_rule_reads_is_exported_by_debians_exporters_or_the_app(rule: dict,
                                                                               exported: set[str]) -> None:
    names = {name for name in metric_names(rule["expr"]) if ":" not in name}
    assert names, f"{rule['record']}: no metric found in {rule['expr']!r}"
    assert names - exported == set(), f"{rule['record']} reads metrics nothing exports: {sorted(names - exported)}"
