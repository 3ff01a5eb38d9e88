"""`tsdeploy generate dashboards`: Grafana dashboard JSON over the stack's recording rules, for a Grafana run elsewhere.

Grafana is not packaged by Debian, so the bundle does not install it; the monitor role's Prometheus records the
key views (templates/monitor/recording.yml) and these dashboards draw them. Panels read the recording rules by
name (raw metrics only where a view needs no computing), and `generate` refuses to write a dashboard naming a
rule recording.yml does not record, so the two files cannot drift apart unnoticed.

Each dashboard is Grafana's classic JSON model: a `datasource` variable (any Prometheus data source, picked in
Grafana, so the file carries no data source uid) and a `host` variable (the inventory host names, from
`label_values(up, host)`). The output is deterministic: sorted keys, fixed ids and layout, no timestamps; a
second run writes the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Any

import click
import yaml

from tsdeploy import TEMPLATES_DIR

RECORDING_RULES = TEMPLATES_DIR / "monitor" / "recording.yml"
#: The last schema version of Grafana's classic dashboard model (Grafana 12). A Grafana whose own latest is
#: older runs none of its migrations on a newer version, so the file imports there too.
SCHEMA_VERSION = 42
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Panels filtered by the `host` variable carry this matcher.
HOST = 'host=~"$host"'
#: A recorded series' name: level:metric:operations (raw metric names have no colon).
_RECORDED_NAME = re.compile(r"\b[a-zA-Z_]+:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+\b")
GRID_WIDTH, PANEL_HEIGHT = 24, 8


class DashboardError(click.ClickException):
    """A dashboard names a recording rule that recording.yml does not record."""


@dataclasses.dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A colour from `value` up: drawn as a line on time series (an alert's bound, so the graph shows it)."""

    value: float
    color: str


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    width: int = GRID_WIDTH // 2
    thresholds: tuple[Threshold, ...] = ()
    #: Ratios are drawn on 0..1 so that a flat 2 % does not fill the panel like a flat 98 %.
    max: float | None = None


#: The overview: is everything up, how the app answers, and what its services and hosts have left.
OVERVIEW = (
    Panel("Targets up", "Each scrape target by host and job (down: Prometheus cannot scrape it), and the HTTPS "
          "probe of the site through the lb.", "none",
          (Query(f"up{{{HOST}}}", "{{host}} {{job}}"),
           Query('probe_success{job="site"}', "site {{instance}}")),
          kind="state-timeline", width=GRID_WIDTH),
    Panel("Requests per host", "Requests a second each app host answers.", "reqps",
          (Query(f"host:talentsphere_http_requests:rate5m{{{HOST}}}", "{{host}}"),)),
    Panel("5xx ratio per host", "Share of each app host's answers that were 5xx; the line is the "
          "HighServerErrorRatio alert's bound.", "percentunit",
          (Query(f"host:talentsphere_http_5xx:ratio_rate5m{{{HOST}}}", "{{host}}"),),
          thresholds=(Threshold(0.05, "red"),), max=1),
    Panel("p95 latency per endpoint", "95th percentile of each endpoint's answer time over every app host; the "
          "line is the SlowEndpoint alert's bound.", "s",
          (Query("endpoint:talentsphere_http_request_duration_seconds:p95_5m", "{{endpoint}}"),),
          thresholds=(Threshold(0.5, "red"),)),
    Panel("Requests per endpoint", "Requests a second per endpoint over every app host: how much traffic each "
          "p95 rests on.", "reqps",
          (Query("endpoint:talentsphere_http_requests:rate5m", "{{endpoint}}"),)),
    Panel("Cache hit ratio per host", "Share of the app's cache lookups Redis answered; the rest went to "
          "PostgreSQL.", "percentunit",
          (Query(f"host:talentsphere_cache_hits:ratio_rate5m{{{HOST}}}", "{{host}}"),), max=1),
    Panel("App pool connections in use", "Database connections the app's workers hold, per app host.", "none",
          (Query(f"sum by (host) (talentsphere_db_pool_checked_out{{{HOST}}})", "{{host}}"),)),
    Panel("PostgreSQL connections used", "Connections of every database and state, as a share of "
          "max_connections; the line is the PostgresConnectionsNearLimit alert's bound.", "percentunit",
          (Query(f"host:pg_connections_used:ratio{{{HOST}}}", "{{host}}"),),
          thresholds=(Threshold(0.8, "orange"),), max=1),
    Panel("Redis memory used", "Used memory as a share of maxmemory; the line is the RedisMemoryNearLimit "
          "alert's bound.", "percentunit",
          (Query(f"host:redis_memory_used:ratio{{{HOST}}}", "{{host}}"),),
          thresholds=(Threshold(0.9, "orange"),), max=1),
    Panel("Disk free", "Free share of each real filesystem (tmpfs and the like left out); the lines are the "
          "disk alerts' bounds.", "percentunit",
          (Query(f"host_mountpoint:node_filesystem_avail:ratio{{{HOST}}}", "{{host}} {{mountpoint}}"),),
          thresholds=(Threshold(0.05, "red"), Threshold(0.2, "orange")), max=1),
    Panel("CPU busy", "Share of each host's CPU time not idle (iowait counts as busy).", "percentunit",
          (Query(f"host:node_cpu_busy:ratio_rate5m{{{HOST}}}", "{{host}}"),), max=1),
    Panel("Memory available", "MemAvailable as a share of MemTotal (the reclaimable page cache counts as "
          "available).", "percentunit",
          (Query(f"host:node_memory_available:ratio{{{HOST}}}", "{{host}}"),), max=1),
)

#: File name -> (uid, title, panels). The uid is stable so a re-import replaces the dashboard.
DASHBOARDS: dict[str, tuple[str, str, tuple[Panel, ...]]] = {
    "talentsphere-overview.json": ("talentsphere-overview", "TalentSphere overview", OVERVIEW),
}


def recorded_names(path: pathlib.Path = RECORDING_RULES) -> set[str]:
    """The series recording.yml records."""
    return {rule["record"] for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
            if "record" in rule}


def _thresholds(panel: Panel) -> dict[str, Any]:
    if panel.kind == "state-timeline":
        return {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}]}
    steps = [{"color": "green", "value": None}]
    steps += [{"color": step.color, "value": step.value}
              for step in sorted(panel.thresholds, key=lambda step: step.value)]
    return {"mode": "absolute", "steps": steps}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    legend = {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True}
    if panel.kind == "state-timeline":
        defaults |= {"color": {"mode": "thresholds"}, "mappings": [
            {"type": "value", "options": {"0": {"color": "red", "index": 0, "text": "down"},
                                          "1": {"color": "green", "index": 1, "text": "up"}}}]}
        options = {"legend": legend, "mergeValues": True, "rowHeight": 0.9, "showValue": "never",
                   "tooltip": {"mode": "single", "sort": "none"}}
    else:
        defaults |= {"color": {"mode": "palette-classic"}, "min": 0,
                     "custom": {"thresholdsStyle": {"mode": "line" if panel.thresholds else "off"}}}
        if panel.max is not None:
            defaults["max"] = panel.max
        options = {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": options,
        "targets": [{"datasource": DATASOURCE, "expr": query.expr, "legendFormat": query.legend, "range": True,
                     "refId": chr(ord("A") + index)} for index, query in enumerate(panel.queries)],
        "title": panel.title,
        "type": panel.kind,
    }


def _layout(panels: tuple[Panel, ...]) -> list[dict[str, Any]]:
    """Left to right, a new row when the next panel does not fit; ids in order from 1."""
    laid, x, y = [], 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        laid.append(_panel(panel, panel_id, x, y))
        x += panel.width
    return laid


def _variables() -> list[dict[str, Any]]:
    return [
        {"current": {}, "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
         "name": "datasource", "options": [], "query": "prometheus", "refresh": 1, "regex": "",
         "type": "datasource"},
        # Every target carries `host` (the inventory host name); `up` has a series for each of them.
        {"allValue": ".*", "current": {}, "datasource": DATASOURCE, "definition": "label_values(up, host)",
         "hide": 0, "includeAll": True, "label": "Host", "multi": True, "name": "host", "options": [],
         "query": "label_values(up, host)", "refresh": 2, "regex": "", "sort": 1, "type": "query"},
    ]


def dashboard(uid: str, title: str, panels: tuple[Panel, ...]) -> dict[str, Any]:
    """One dashboard in Grafana's classic JSON model."""
    return {
        "annotations": {"list": []},
        "description": "Generated by `tsdeploy generate dashboards` from the recording rules of "
                       "templates/monitor/recording.yml; regenerate rather than edit.",
        "editable": True,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _layout(panels),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["talentsphere"],
        "templating": {"list": _variables()},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by its file name."""
    return {name: dashboard(uid, title, panels) for name, (uid, title, panels) in DASHBOARDS.items()}


def queries(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard's panels."""
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def unrecorded(documents: dict[str, dict[str, Any]], recorded: set[str]) -> list[str]:
    """`file: name` for each recording rule a dashboard reads that is not recorded."""
    return [f"{name}: {series}" for name, document in sorted(documents.items()) for expr in queries(document)
            for series in sorted(set(_RECORDED_NAME.findall(expr)) - recorded)]


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Check every dashboard against recording.yml, then write OUT/<name>.json; return the written paths."""
    documents = dashboards()
    missing = unrecorded(documents, recorded_names())
    if missing:
        raise DashboardError(f"dashboards read series {RECORDING_RULES} does not record: {', '.join(missing)}; "
                             "fix: record them there or read another series")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in sorted(documents.items()):
        path = out_dir / name
        path.write_text(to_json(document))
        written.append(path)
    return written


@click.command("dashboards")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Directory to write the dashboard JSON files into (created if missing).")
def dashboards_command(out_dir: pathlib.Path) -> None:
    """Write Grafana dashboards (JSON) drawing the recording rules of templates/monitor/recording.yml."""
    for path in generate(out_dir):
        click.echo(str(path))
