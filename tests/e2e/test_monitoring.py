"""Monitoring on the split lab: an app host stopped fires InstanceDown, the alert reaches Alertmanager's receiver
(the lab's local sink on monitor1) within its `for` window, and resolves once the app is back.

The lab's monitor settings (tsdeploy/lab/inventory.py LAB_MONITOR): scrape and evaluate every 5 s, group_wait 5 s,
group_interval 10 s; InstanceDown's `for` is 1 minute (templates/monitor/alerts.yml). The measured latencies are
printed (pytest -s, or the junit log) for the issue notes.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

APP_UNIT = "talentsphere"
SINK_FILE = "/var/lib/tsdeploy-alert-sink/alerts.jsonl"
#: InstanceDown's `for` (60 s) + a failed scrape (<= 5 s) + an evaluation (<= 5 s) + group_wait (5 s), with room
#: for a loaded 2-core machine running seven hosts.
FIRE_BOUND_SECONDS = 150
#: An up scrape (<= 5 s) + an evaluation (<= 5 s) + group_interval (10 s), with the same room.
RESOLVE_BOUND_SECONDS = 90


def _notifications(deployment: Deployment) -> list[dict]:
    """Every notification the sink received so far (Alertmanager's webhook documents)."""
    text = deployment.lab.ssh("monitor1", f"sudo cat {SINK_FILE} 2>/dev/null || true")
    return [json.loads(line)["notification"] for line in text.splitlines() if line.strip()]


def _alert_states(deployment: Deployment, alertname: str, instance: str) -> list[str]:
    """The statuses ("firing", "resolved") the sink received for one alert, in order."""
    return [alert["status"] for notification in _notifications(deployment) for alert in notification["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["labels"].get("instance") == instance]


def _wait_for(deployment: Deployment, alertname: str, instance: str, status: str, seen: int,
              timeout: float) -> float:
    """Seconds until the sink holds more than `seen` notifications of the alert, the last with `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        states = _alert_states(deployment, alertname, instance)
        if len(states) > seen and states[-1] == status:
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"no {status} {alertname} for {instance} reached the sink within {timeout:.0f} s "
                f"(seen: {_alert_states(deployment, alertname, instance)})")


def _run(deployment: Deployment, host: str, command: str) -> None:
    deployment.lab.ssh(host, command)


def test_an_app_host_stopped_fires_instance_down_at_the_sink_and_it_resolves_when_back(
        deployed_split: Deployment) -> None:
    instance = "app1:8000"
    seen = len(_alert_states(deployed_split, "InstanceDown", instance))
    _run(deployed_split, "app1", f"sudo systemctl stop {APP_UNIT}")
    try:
        fired = _wait_for(deployed_split, "InstanceDown", instance, "firing", seen, FIRE_BOUND_SECONDS)
    finally:
        _run(deployed_split, "app1", f"sudo systemctl start {APP_UNIT}")
    resolved = _wait_for(deployed_split, "InstanceDown", instance, "resolved", seen + 1, RESOLVE_BOUND_SECONDS)
    print(f"\nInstanceDown {instance}: firing at the sink {fired:.0f} s after the stop (for: 60 s); "
          f"resolved {resolved:.0f} s after the start")
    # Only the stopped host's app target fired: the other app host kept serving and being scraped.
    others = [alert["labels"]["instance"] for notification in _notifications(deployed_split)
              for alert in notification["alerts"] if alert["labels"].get("alertname") == "InstanceDown"
              and alert["status"] == "firing" and alert["labels"].get("instance") != instance]
    assert not others, f"InstanceDown fired for other targets too: {sorted(set(others))}"
