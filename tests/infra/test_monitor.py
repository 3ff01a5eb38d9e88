"""monitor and every host: Prometheus, Alertmanager and the blackbox exporter running on localhost; every
scrape target up; the rules loaded; Alertmanager reachable from Prometheus; each exporter running, reachable from
the monitor host and from no other host.

Prometheus is read on the monitor host itself (it listens on 127.0.0.1 only), with python3's urllib.
"""

from __future__ import annotations

import json

import pytest
import yaml

from roles.monitor import manifest as monitor_manifest
from tsdeploy import TEMPLATES_DIR
from verifyhosts import Target

QUERY = ("import json, sys, urllib.request; "
         "print(urllib.request.urlopen('http://%s' + sys.argv[1], timeout=10).read().decode())")


def _api(monitor: Target, path: str) -> dict:
    """GET a Prometheus API path on the monitor host; its `data`."""
    script = QUERY % monitor.ctx["monitor"]["prometheus_listen"]
    document = json.loads(monitor.sudo_check("-u nobody python3 -c %s %s", script, path))
    assert document.get("status") == "success", f"{monitor}: {path} answered {document}"
    return document["data"]


def _exporter_services(target: Target) -> list[str]:
    exporters = target.ctx["exporters"]
    if not exporters["enabled"]:
        pytest.skip(f"{target}: the inventory has no monitor host, so no exporter runs")
    return ["prometheus-node-exporter", *(["prometheus-postgres-exporter"] if exporters["postgres"] else []),
            *(["prometheus-redis-exporter"] if exporters["redis"] else []),
            *(["prometheus-nginx-exporter"] if exporters["nginx"] else [])]


@pytest.mark.control("ts-mon-01")
@pytest.mark.parametrize("service", [monitor_manifest.PROMETHEUS, monitor_manifest.ALERTMANAGER,
                                     monitor_manifest.BLACKBOX])
def test_prometheus_alertmanager_and_the_prober_run_and_start_at_boot(monitor: Target, service: str) -> None:
    assert (problem := monitor.service_problem(service)) is None, problem


@pytest.mark.control("ts-mon-02")
def test_every_scrape_target_is_up(monitor: Target) -> None:
    targets = _api(monitor, "/api/v1/targets?state=active")["activeTargets"]
    expected = {(job["name"], target["instance"]) for job in monitor.ctx["monitor"]["jobs"]
                for target in job["targets"]}
    scraped = {(target["labels"]["job"], target["labels"]["instance"]): target for target in targets}
    missing = sorted(expected - set(scraped))
    down = sorted(f"{job} {instance}: {target['lastError'] or target['health']}"
                  for (job, instance), target in scraped.items() if target["health"] != "up")
    assert not missing and not down, f"{monitor}: targets missing {missing}, not up {down}"
    assert any(job == "site" for job, _ in scraped), f"{monitor}: the site probe is not configured"


@pytest.mark.control("ts-mon-03")
def test_the_bundles_alert_rules_are_loaded(monitor: Target) -> None:
    groups = _api(monitor, "/api/v1/rules?type=alert")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    shipped = {rule["alert"] for group in yaml.safe_load((TEMPLATES_DIR / "monitor" / "alerts.yml").read_text())
               ["groups"] for rule in group["rules"] if "alert" in rule}
    assert shipped and shipped <= loaded, f"{monitor}: alert rules not loaded: {sorted(shipped - loaded)}"
    unhealthy = [f"{rule['name']}: {rule.get('lastError')}" for group in groups for rule in group["rules"]
                 if rule.get("health") == "err"]
    assert not unhealthy, f"{monitor}: rules failing to evaluate: {unhealthy}"


@pytest.mark.control("ts-mon-03")
def test_prometheus_reaches_alertmanager(monitor: Target) -> None:
    active = _api(monitor, "/api/v1/alertmanagers")["activeAlertmanagers"]
    wanted = f"http://{monitor.ctx['monitor']['alertmanager_listen']}/api/v2/alerts"
    assert [manager["url"] for manager in active] == [wanted], f"{monitor}: active Alertmanagers {active}"


@pytest.mark.control("ts-mon-04")
def test_every_exporter_of_the_host_runs_and_starts_at_boot(any_host: Target) -> None:
    problems = [problem for service in _exporter_services(any_host)
                if (problem := any_host.service_problem(service)) is not None]
    assert not problems, f"exporters not running or not enabled: {problems}"


@pytest.mark.control("ts-mon-05")
def test_the_lb_reaches_no_exporter(lb: Target) -> None:
    """From the lb (the host that faces users) every exporter port of every other host is closed: the ports
    are open to the monitor host's address alone."""
    if not lb.ctx["exporters"]["enabled"]:
        pytest.skip(f"{lb}: the inventory has no monitor host, so no exporter runs")
    if "monitor" in lb.groups:
        pytest.skip(f"{lb} is the monitor host: it must reach the exporters (ts-mon-02)")
    node_port = int(lb.ctx["exporters"]["node_listen"].rsplit(":", 1)[1])
    postgres_port = int(lb.ctx["exporters"]["postgres_listen"].rsplit(":", 1)[1])
    peers = {peer["name"]: peer["address"] for group in lb.ctx["peers"].values() for peer in group
             if peer["name"] != lb.name and peer["address"] != lb.address}
    probes = [(name, address, node_port) for name, address in sorted(peers.items())]
    probes += [(peer["name"], peer["address"], postgres_port) for peer in lb.ctx["peers"]["db"]
               if peer["name"] in peers]
    if not probes:
        pytest.skip(f"{lb} is the only host")
    # A dropped SYN times out: one second is plenty on a private network where an open port answers at once.
    opened = [f"{name}:{port}" for name, address, port in probes if lb.tcp_open(address, port, timeout=1)]
    assert not opened, f"{lb}: exporter ports open from the lb: {opened}; only the monitor host may scrape"
