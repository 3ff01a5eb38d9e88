"""`tsdeploy status INVENTORY [--json]`: the stack's health on one screen, read from the monitor host's Prometheus.

What it shows (docs/status.md has an example):

- per inventory host, whether each of its scrape jobs is up (node, postgres, redis, nginx, app, site; the site
  job counts as down when its blackbox probe fails too);
- the app's request rate, 5xx ratio and p95 latency per app host and in total, over a window (5m by default);
- PostgreSQL's connections against max_connections and each replica's replay lag ("no replica" without one);
- Redis's memory used against maxmemory;
- the age of each stanza's and type's last successful backup ("no backup metric" when nothing exports it);
- the alerts Prometheus has firing (and how many are pending).

Prometheus listens on 127.0.0.1 of the monitor host, so the command asks it over SSH, as the deploy reaches
every host: one read-only pyinfra fact (roles/monitor/facts.py PrometheusQueries) runs every query there in one
connection. Asking is one function, `Ask`: PromQL by name -> Prometheus's answers, with two implementations,
`over_ssh` (the fact) and `over_http` (the same program run here, for a Prometheus this machine reaches: the
tests'). Everything else, which queries, the report built from the answers and its two renderings (screen,
JSON), is pure.

Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import click

from roles.monitor.context import PROMETHEUS_LISTEN
from roles.registry import Group
from tsdeploy.backup_cli import format_duration, format_size, format_time, table
from tsdeploy.inventory import Inventory, InventoryError, load
from tsdeploy.topology import Topology

#: The monitor role's inventory group: the status is read from its (first) host's Prometheus.
MONITOR = Group.MONITOR
QUERIES_FACT = "roles.monitor.facts.PrometheusQueries"
#: The scrape jobs the monitor role configures, in the order a host's row lists them.
JOBS = ("node", "postgres", "redis", "nginx", "app", "site")
BACKUP_METRIC = "talentsphere_backup_last_success_timestamp_seconds"
DEFAULT_WINDOW = "5m"
_WINDOW = re.compile(r"^[1-9][0-9]*[smhd]$")

#: Ask Prometheus the named queries: {name: PromQL} -> fetch's answer (roles/monitor/facts.py `fetch`).
Ask = Callable[[Mapping[str, str]], Mapping[str, Any]]


class StatusError(Exception):
    """The status cannot be read; the message names the host, what failed and what to check."""


# --- the queries ------------------------------------------------------------------------------------------------------


def queries(window: str = DEFAULT_WINDOW) -> dict[str, str]:
    """Every PromQL query of the report, by name; rates over `window` (a PromQL duration: 5m, 1h).

    Each keeps the `host` label the monitor role puts on every target, so rows are per inventory host.
    Numerators and denominators are separate queries: a ratio of two vectors drops the hosts that have no
    5xx series at all, which must read 0 %, not "no data".
    """
    if not _WINDOW.match(window):
        raise ValueError(f"{window!r} is not a PromQL duration like 5m, 30m or 1h")
    requests = "talentsphere_http_requests_total{job=\"app\"}"
    errors = "talentsphere_http_requests_total{job=\"app\",status=~\"5..\"}"
    buckets = f"rate(talentsphere_http_request_duration_seconds_bucket{{job=\"app\"}}[{window}])"
    return {
        "up": "up",
        "probe": "probe_success{job=\"site\"}",
        "app_requests": f"sum by (host) (rate({requests}[{window}]))",
        "app_errors": f"sum by (host) (rate({errors}[{window}]))",
        "app_p95": f"histogram_quantile(0.95, sum by (host, le) ({buckets}))",
        "app_p95_total": f"histogram_quantile(0.95, sum by (le) ({buckets}))",
        "pg_connections": "sum by (host) (pg_stat_activity_count{job=\"postgres\"})",
        "pg_max_connections": "max by (host) (pg_settings_max_connections{job=\"postgres\"})",
        # Replay lag in bytes per replica, from pg_stat_replication on the primary (the exporter's built-in
        # metric): no series without a replica.
        "pg_replication_lag": "pg_stat_replication_pg_wal_lsn_diff{job=\"postgres\"}",
        "redis_used": "max by (host) (redis_memory_used_bytes{job=\"redis\"})",
        "redis_max": "max by (host) (redis_memory_max_bytes{job=\"redis\"})",
        "backups": f"max by (host, stanza, type) ({BACKUP_METRIC})",
    }


# --- from Prometheus's answers to the report --------------------------------------------------------------------------


def _number(text: Any) -> float | None:
    """A sample value as a float; None for NaN and infinities (no data: a quantile of no requests is NaN)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _host(labels: Mapping[str, str]) -> str:
    # Every target of the monitor role carries `host`; anything else (a target added by hand) is named by its
    # address, so that it still shows.
    return labels.get("host") or labels.get("instance") or "(no host label)"


def _samples(answer: Mapping[str, Any], name: str, errors: dict[str, str]) -> list[Mapping[str, Any]]:
    result = (answer.get("results") or {}).get(name)
    if result is None:
        errors[name] = "not answered"
        return []
    if "error" in result:
        errors[name] = result["error"]
        return []
    return list(result.get("samples") or ())


def _by_host(samples: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    return {_host(sample["metric"]): _number(sample["value"][1]) for sample in samples}


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole else (part or 0.0) / whole


def _order(known: Sequence[str], found: Iterable[str]) -> list[str]:
    """The inventory's hosts in its order, then any other host Prometheus names, sorted."""
    return [*known, *sorted(set(found) - set(known))]


def host_rows(up: Sequence[Mapping[str, Any]], probes: Sequence[Mapping[str, Any]],
              hosts: Sequence[str]) -> list[dict[str, Any]]:
    """Per host: each scrape job's state ("up"/"down") and its targets; the host is down when any job is.

    A `site` target counts as down when Prometheus reaches the blackbox exporter but its probe fails: the
    exporter being up says nothing about the site. A host Prometheus scrapes nothing of reads "not scraped".
    """
    failed_probes = {(_host(s["metric"]), s["metric"].get("instance")) for s in probes
                     if _number(s["value"][1]) != 1}
    jobs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for sample in up:
        labels = sample["metric"]
        host, job = _host(labels), labels.get("job", "?")
        ok = _number(sample["value"][1]) == 1
        probe_failed = job == "site" and (host, labels.get("instance")) in failed_probes
        jobs.setdefault(host, {}).setdefault(job, []).append(
            {"instance": labels.get("instance"), "up": ok and not probe_failed,
             **({"probe": "failed"} if ok and probe_failed else {})})
    rows = []
    for host in _order(hosts, jobs):
        found = jobs.get(host, {})
        ordered = sorted(found, key=lambda job: (JOBS.index(job) if job in JOBS else len(JOBS), job))
        states = {job: "up" if all(target["up"] for target in found[job]) else "down" for job in ordered}
        state = "not scraped" if not states else "down" if "down" in states.values() else "up"
        rows.append({"host": host, "state": state, "jobs": states,
                     "targets": {job: sorted(found[job], key=lambda t: t["instance"] or "") for job in ordered}})
    return rows


def app_section(answer: Mapping[str, Any], app_hosts: Sequence[str], window: str,
                errors: dict[str, str]) -> dict[str, Any]:
    """Request rate (per second), 5xx ratio and p95 (seconds) per app host and in total; None: no data."""
    requests = _by_host(_samples(answer, "app_requests", errors))
    failures = _by_host(_samples(answer, "app_errors", errors))
    p95 = _by_host(_samples(answer, "app_p95", errors))
    total_p95 = [_number(s["value"][1]) for s in _samples(answer, "app_p95_total", errors)]
    rows = [{"host": host, "requests_per_second": requests.get(host),
             "error_ratio": _ratio(failures.get(host), requests.get(host)), "p95_seconds": p95.get(host)}
            for host in _order(app_hosts, requests)]
    known = [value for value in requests.values() if value is not None]
    total_requests = sum(known) if known else None
    total_errors = sum(value for value in failures.values() if value is not None)
    return {"window": window, "hosts": rows,
            "total": {"requests_per_second": total_requests, "error_ratio": _ratio(total_errors, total_requests),
                      "p95_seconds": total_p95[0] if total_p95 else None}}


def postgres_section(answer: Mapping[str, Any], db_hosts: Sequence[str], errors: dict[str, str]) -> list[dict]:
    """Per db host: connections, max_connections, and the replicas with their replay lag in bytes ([]: none)."""
    connections = _by_host(_samples(answer, "pg_connections", errors))
    limits = _by_host(_samples(answer, "pg_max_connections", errors))
    replicas: dict[str, list[dict[str, Any]]] = {}
    for sample in _samples(answer, "pg_replication_lag", errors):
        labels = sample["metric"]
        replicas.setdefault(_host(labels), []).append(
            {"name": labels.get("application_name") or labels.get("client_addr") or "?",
             "client_addr": labels.get("client_addr"), "lag_bytes": _number(sample["value"][1])})
    return [{"host": host, "connections": connections.get(host), "max_connections": limits.get(host),
             "replicas": sorted(replicas.get(host, []), key=lambda replica: replica["name"])}
            for host in _order(db_hosts, [*connections, *limits, *replicas])]


def redis_section(answer: Mapping[str, Any], cache_hosts: Sequence[str], errors: dict[str, str]) -> list[dict]:
    """Per cache host: memory used and maxmemory in bytes (maxmemory 0: no limit)."""
    used = _by_host(_samples(answer, "redis_used", errors))
    limits = _by_host(_samples(answer, "redis_max", errors))
    return [{"host": host, "used_bytes": used.get(host), "max_bytes": limits.get(host)}
            for host in _order(cache_hosts, [*used, *limits])]


def backup_section(answer: Mapping[str, Any], errors: dict[str, str]) -> list[dict]:
    """Each (host, stanza, type)'s last successful backup: its time and age at the evaluation time."""
    rows = []
    for sample in _samples(answer, "backups", errors):
        labels, (evaluated, value) = sample["metric"], sample["value"]
        finished = _number(value)
        rows.append({"host": _host(labels), "stanza": labels.get("stanza"), "type": labels.get("type"),
                     "last_success": finished,
                     "age_seconds": None if finished is None else float(evaluated) - finished})
    kinds = ("full", "diff", "incr")  # pgBackRest's types, the largest first (as `tsdeploy backup --type` lists them)
    return sorted(rows, key=lambda row: (row["host"], row["stanza"] or "",
                                         kinds.index(row["type"]) if row["type"] in kinds else len(kinds),
                                         row["type"] or ""))


def alert_section(alerts: Any) -> dict[str, Any]:
    """The firing alerts (most severe first) and how many are pending (their `for` has not passed yet)."""
    if isinstance(alerts, Mapping):
        return {"firing": [], "pending": 0, "error": alerts.get("error", "no answer")}
    rank = {"critical": 0, "warning": 1, "info": 2}
    firing = [{"alertname": alert.get("labels", {}).get("alertname"),
               "severity": alert.get("labels", {}).get("severity"),
               "host": alert.get("labels", {}).get("host"),
               "summary": alert.get("annotations", {}).get("summary"),
               "active_since": alert.get("activeAt"), "labels": alert.get("labels", {})}
              for alert in alerts or () if alert.get("state") == "firing"]
    firing.sort(key=lambda alert: (rank.get(alert["severity"], 3), alert["alertname"] or "", alert["host"] or ""))
    return {"firing": firing, "pending": sum(1 for alert in alerts or () if alert.get("state") == "pending"),
            "error": None}


def build_report(answer: Mapping[str, Any], groups: Mapping[str, Sequence[str]], monitor_host: str,
                 window: str = DEFAULT_WINDOW) -> dict[str, Any]:
    """The whole report (what --json prints) from fetch's answer and the inventory's hosts by group.

    `groups`: {"all": every host in inventory order, "app": [...], "db": [...], "cache": [...]}. A query
    Prometheus refused is listed under "errors" and its section reads as having no data.
    """
    errors: dict[str, str] = {}
    report = {
        "prometheus": {"host": monitor_host, "time": answer.get("time")},
        "hosts": host_rows(_samples(answer, "up", errors), _samples(answer, "probe", errors), groups.get("all", ())),
        "app": app_section(answer, groups.get(Group.APP, ()), window, errors),
        "postgres": postgres_section(answer, groups.get(Group.DB, ()), errors),
        "redis": redis_section(answer, groups.get(Group.CACHE, ()), errors),
        "backups": backup_section(answer, errors),
        "alerts": alert_section(answer.get("alerts")),
    }
    report["errors"] = errors
    return report


# --- the screen -------------------------------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _latency(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _of(used: float | None, limit: float | None, show: Callable[[float], str]) -> str:
    """`used / limit (share)`; a limit of 0 means none (Redis's maxmemory 0)."""
    if used is None:
        return "no data"
    if limit is None:
        return f"{show(used)} / ? (no limit reported)"
    if limit == 0:
        return f"{show(used)} (no limit)"
    return f"{show(used)} / {show(limit)} ({used / limit * 100:.0f} %)"


def render(report: Mapping[str, Any]) -> list[str]:
    """The report as the screen shows it: one table per section, then the firing alerts."""
    prometheus = report["prometheus"]
    lines = [f"TalentSphere status from Prometheus on {prometheus['host']} at {format_time(prometheus['time'])}", ""]
    lines += table(["host", "state", "scrape jobs"], [
        [row["host"], row["state"].upper() if row["state"] == "down" else row["state"],
         ", ".join(f"{job} {'up' if state == 'up' else 'DOWN'}" + _probe_note(row, job)
                   for job, state in row["jobs"].items()) or "-"]
        for row in report["hosts"]])

    app = report["app"]
    lines += ["", *table([f"app (last {app['window']})", "requests/s", "5xx", "p95"], [
        *([row["host"], _rate(row["requests_per_second"]), _percent(row["error_ratio"]), _latency(row["p95_seconds"])]
          for row in app["hosts"]),
        ["total", _rate(app["total"]["requests_per_second"]), _percent(app["total"]["error_ratio"]),
         _latency(app["total"]["p95_seconds"])]])]

    lines += ["", *table(["postgres", "connections", "replication"], [
        [row["host"], _of(row["connections"], row["max_connections"], lambda v: f"{v:.0f}"),
         ", ".join(f"{replica['name']} {format_size(replica['lag_bytes'])} behind" for replica in row["replicas"])
         or "no replica"]
        for row in report["postgres"]] or [["-", "no data", "-"]])]

    lines += ["", *table(["redis", "memory used"], [
        [row["host"], _of(row["used_bytes"], row["max_bytes"], format_size)] for row in report["redis"]]
        or [["-", "no data"]])]

    lines.append("")
    if report["backups"]:
        lines += table(["backup host", "stanza", "type", "last success", "age"], [
            [row["host"], row["stanza"] or "-", row["type"] or "-", format_time(row["last_success"]),
             "-" if row["age_seconds"] is None else format_duration(row["age_seconds"])]
            for row in report["backups"]])
    else:
        lines.append(f"backups: no backup metric ({BACKUP_METRIC} has no series: is the backup role deployed "
                     "and node exporter's textfile collector reading its file?)")

    alerts = report["alerts"]
    lines.append("")
    if alerts["error"]:
        lines.append(f"alerts: could not be read: {alerts['error']}")
    else:
        lines.append(f"alerts: {len(alerts['firing'])} firing, {alerts['pending']} pending")
        lines += [f"  {alert['severity'] or '-'}  {alert['alertname']}: {alert['summary'] or '(no summary)'}"
                  f" (since {_since(alert['active_since'])})" for alert in alerts["firing"]]
    for name, error in sorted(report["errors"].items()):
        lines.append(f"query {name} failed: {error}")
    return lines


def _probe_note(row: Mapping[str, Any], job: str) -> str:
    return " (probe failed)" if any(target.get("probe") == "failed" for target in row["targets"][job]) else ""


def _since(moment: str | None) -> str:
    # Prometheus writes activeAt in RFC 3339 with nanoseconds; seconds are enough on a screen.
    return (moment or "-").split(".")[0].replace("T", " ").removesuffix("Z") + (" UTC" if moment else "")


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False)


# --- asking Prometheus ------------------------------------------------------------------------------------------------


def over_http(base_url: str, timeout: float = 10.0) -> Ask:
    """Ask a Prometheus this machine reaches at `base_url` (the tests' own), with the fact's own program."""
    from roles.monitor.facts import fetch

    def ask(named: Mapping[str, str]) -> Mapping[str, Any]:
        return fetch(base_url, {"queries": dict(named), "alerts": True, "timeout": timeout})

    return ask


def over_ssh(inventory: Inventory, host: str) -> Ask:
    """Ask the Prometheus on the monitor host `host`, over SSH: the PrometheusQueries fact, read-only."""
    from tsdeploy.deployment import read_fact

    # Where the monitor role makes Prometheus listen on that host (its own context, as the deploy renders it).
    prometheus_url = f"http://{Topology(inventory).role_context('monitor', host)['prometheus_listen']}"

    def ask(named: Mapping[str, str]) -> Mapping[str, Any]:
        answer = read_fact(inventory, QUERIES_FACT, (f"queries={json.dumps(dict(named))}", f"url={prometheus_url}"),
                           (host,)).get(host)
        if not answer:
            raise StatusError(f"could not run the queries on the monitor host {host} over SSH: check that it is up "
                              f"and that `ssh` to it works as the deploy user with the inventory's known_hosts "
                              f"(tsdeploy deploy reaches it the same way)")
        return answer

    return ask


def read_report(ask: Ask, groups: Mapping[str, Sequence[str]], monitor_host: str,
                window: str = DEFAULT_WINDOW) -> dict[str, Any]:
    """Ask every query of the report, then build it; StatusError when Prometheus does not answer at all."""
    answer = ask(queries(window))
    if answer.get("error"):
        raise StatusError(
            f"Prometheus on the monitor host {monitor_host} did not answer ({answer['error']}); check on "
            f"{monitor_host}: `systemctl status prometheus` and `journalctl -u prometheus` (running? its "
            f"configuration or rules refused?), and that it listens on {PROMETHEUS_LISTEN} (`ss -tlnp`); if the "
            f"monitor role was never deployed there, run `tsdeploy deploy INVENTORY`")
    return build_report(answer, groups, monitor_host, window)


def inventory_groups(inventory: Inventory) -> dict[str, list[str]]:
    return {"all": inventory.hosts, **{str(group): inventory.hosts_in(group) for group in (Group.APP, Group.DB,
                                                                                           Group.CACHE)}}


def monitor_host(inventory: Inventory) -> str:
    """The inventory's monitor host; StatusError saying how to add one when it has none."""
    hosts = inventory.hosts_in(MONITOR)
    if not hosts:
        raise StatusError(
            f"the inventory {inventory.path} has no monitor host, and the status is read from its Prometheus: "
            f"add a host to the `{MONITOR}` group of its hosts.yml (a host of its own, or one of the others), "
            f"e.g.\n  children:\n    {MONITOR}:\n      hosts:\n        mon1: {{}}\nthen run `tsdeploy deploy "
            f"{inventory.path}` to install Prometheus there")
    return hosts[0]


@click.command("status")
@click.argument("inventory", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--window", default=DEFAULT_WINDOW, show_default=True, metavar="DURATION",
              help="The window of the app's request rate, 5xx ratio and p95 (a PromQL duration: 1m, 5m, 1h).")
@click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False),
              envvar="ANSIBLE_VAULT_PASSWORD_FILE", metavar="FILE",
              help="The ansible-vault password file (default: the inventory's ansible.cfg).")
def status(inventory: pathlib.Path, as_json: bool, window: str, vault_password_file: str | None) -> None:
    """Show INVENTORY's health from its monitor host's Prometheus: hosts, app, PostgreSQL, Redis, backups, alerts."""
    if not _WINDOW.match(window):
        raise click.BadParameter(f"{window!r} is not a PromQL duration like 1m, 5m or 1h", param_hint="--window")
    try:
        loaded = load(inventory, vault_password_file=vault_password_file)
    except InventoryError as error:
        raise click.ClickException(f"the inventory {inventory} is not valid:\n{error}") from None
    try:
        host = monitor_host(loaded)
        click.echo(f"==> asking Prometheus on {host} (over SSH, where it listens on localhost)", err=True)
        report = read_report(over_ssh(loaded, host), inventory_groups(loaded), host, window)
    except StatusError as error:
        raise click.ClickException(str(error)) from None
    click.echo(to_json(report) if as_json else "\n".join(render(report)))
