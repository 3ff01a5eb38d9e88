"""`tsdeploy generate dashboards`: Grafana dashboard JSON drawing the recording rules of
templates/monitor/recording.yml. Every panel query is valid PromQL (promtool parses it as a rule), names only
series recording.yml records or metrics Debian's exporters and the app really export (run here as the alert
and recording rule tests run them), and a second run writes the same bytes.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from click.testing import CliRunner

from exporter_metrics import exported_names, metric_names, needs_promtool
from tsdeploy.generate import dashboards
from tsdeploy.generate import generate as generate_group

OVERVIEW = "talentsphere-overview.json"
#: What Grafana puts in place of each variable a query uses, so that promtool can parse the query.
VARIABLES = {"host": ".*"}


def generate(out: pathlib.Path) -> dict[str, str]:
    result = CliRunner().invoke(generate_group, ["dashboards", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(out / name) for name in sorted(dashboards.DASHBOARDS)]
    return {path.name: path.read_text() for path in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return {name: json.loads(text) for name, text in generate(tmp_path_factory.mktemp("dashboards")).items()}


def panel_queries(documents: dict[str, dict]) -> list[tuple[str, str]]:
    return [(f"{name} {panel['title']} {target['refId']}", target["expr"]) for name, document in documents.items()
            for panel in document["panels"] for target in panel["targets"]]


def with_values(expr: str) -> str:
    """The query as Grafana sends it, each $variable replaced by a value it may take."""
    return re.sub(r"\$\{?(\w+)\}?", lambda match: VARIABLES[match.group(1)], expr)


def test_the_command_writes_one_overview_dashboard(documents: dict[str, dict]) -> None:
    assert sorted(documents) == [OVERVIEW]
    overview = documents[OVERVIEW]
    assert overview["uid"] == "talentsphere-overview" and overview["id"] is None
    assert overview["schemaVersion"] == dashboards.SCHEMA_VERSION >= 41


def test_a_second_run_writes_the_same_bytes_with_sorted_keys(tmp_path: pathlib.Path) -> None:
    first = generate(tmp_path / "first")
    assert generate(tmp_path / "second") == first
    assert generate(tmp_path / "first") == first, "writing over an earlier run changes nothing"
    for text in first.values():
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_data_source_is_a_variable_and_hosts_come_from_the_host_label_of_up(documents: dict[str, dict]) -> None:
    for document in documents.values():
        variables = {variable["name"]: variable for variable in document["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["host"]["type"] == "query"
        assert variables["host"]["query"] == variables["host"]["definition"] == "label_values(up, host)"
        assert variables["host"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for panel in document["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert all(target["datasource"] == panel["datasource"] for target in panel["targets"]), panel["title"]


def test_panels_have_unique_ids_and_refids_and_do_not_overlap(documents: dict[str, dict]) -> None:
    for document in documents.values():
        panels = document["panels"]
        assert [panel["id"] for panel in panels] == list(range(1, len(panels) + 1))
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            own = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                   for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not own & cells, f"{panel['title']} overlaps another panel"
            cells |= own
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]


def test_the_overview_shows_the_key_views(documents: dict[str, dict]) -> None:
    exprs = " ".join(expr for _, expr in panel_queries({OVERVIEW: documents[OVERVIEW]}))
    for series in ("host:talentsphere_http_requests:rate5m", "host:talentsphere_http_5xx:ratio_rate5m",
                   "endpoint:talentsphere_http_request_duration_seconds:p95_5m", "host:pg_connections_used:ratio",
                   "host:redis_memory_used:ratio", "host_mountpoint:node_filesystem_avail:ratio",
                   "host:node_cpu_busy:ratio_rate5m", 'up{host=~"$host"}'):
        assert series in exprs


def test_panels_of_host_level_series_follow_the_host_variable(documents: dict[str, dict]) -> None:
    for where, expr in panel_queries(documents):
        if re.search(r"\bhost(_\w+)?:", expr):
            assert 'host=~"$host"' in expr, f"{where}: {expr}"


@needs_promtool
def test_every_panel_query_is_valid_promql(documents: dict[str, dict], tmp_path: pathlib.Path) -> None:
    # promtool 2.42 has no offline query check; a recording rule is parsed as a query, and names the panel.
    queries = panel_queries(documents)
    rules = {"groups": [{"name": "dashboard-queries", "rules": [
        {"record": f"dashboard_query:{index}", "expr": with_values(expr)} for index, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + "\n".join(
        f"dashboard_query:{index} = {where}" for index, (where, _) in enumerate(queries))


def test_every_recording_rule_a_panel_reads_is_recorded(documents: dict[str, dict]) -> None:
    recorded = dashboards.recorded_names()
    for where, expr in panel_queries(documents):
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        assert {name for name in names if ":" in name} - recorded == set(), f"{where}: {expr}"


def test_the_generator_refuses_a_dashboard_reading_a_series_nobody_records() -> None:
    document = dashboards.dashboard("test", "Test", (dashboards.Panel(
        "Gone", "A series recording.yml does not record.", "none",
        (dashboards.Query('host:talentsphere_gone:rate5m{host=~"$host"}', "{{host}}"),)),))
    assert dashboards.unrecorded({"test.json": document}, dashboards.recorded_names()) == [
        "test.json: host:talentsphere_gone:rate5m"]


@pytest.fixture(scope="module")
def exported() -> Iterator[set[str]]:
    yield from exported_names()


def test_every_raw_metric_a_panel_reads_is_exported_by_debians_exporters_or_the_app(
        documents: dict[str, dict], exported: set[str]) -> None:
    for where, expr in panel_queries(documents):
        raw = {name for name in metric_names(expr) if ":" not in name}
        assert raw - exported == set(), f"{where} reads metrics nothing exports: {sorted(raw - exported)}"
