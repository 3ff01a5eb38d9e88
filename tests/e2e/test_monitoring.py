"""Monitoring on the split lab: an app host stopped fires InstanceDown, the alert reaches Alertmanager's receiver
(the lab's local sink on monitor1) within its `for` window, and resolves once the app is back; Redis filled with
keys that have no TTL (not cache entries: Redis cannot evict them) fires RedisMemoryNearLimit, and it resolves
once they are gone.

The lab's monitor settings (tsdeploy/lab/inventory.py LAB_MONITOR): scrape and evaluate every 5 s, group_wait 5 s,
group_interval 10 s; InstanceDown's `for` is 1 minute, RedisMemoryNearLimit's 2 minutes
(templates/monitor/alerts.yml). Redis is filled when the module starts, so its alert's 2 minutes run while the
app host is stopped and started: the two alerts concern different hosts and neither depends on the other. The
measured latencies are printed (pytest -s, or the junit log) for the issue notes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from site_client import deployed_secret, redis_cli

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


def _notifications(deployment: Deployment, since: float) -> list[dict]:
    """The notifications the sink received since `since` (a Unix time: the lab's hosts share this machine's
    clock); earlier ones belong to other tests of the session (a db host rebuilt, a drill broken on purpose)."""
    text = deployment.lab.ssh("monitor1", f"sudo cat {SINK_FILE} 2>/dev/null || true")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [record["notification"] for record in records if record["received"] >= since]


def _alert_states(deployment: Deployment, alertname: str, instance: str, since: float) -> list[str]:
    """The statuses ("firing", "resolved") the sink received for one alert since `since`, in order."""
    return [alert["status"] for notification in _notifications(deployment, since) for alert in notification["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["labels"].get("instance") == instance]


def _wait_for(deployment: Deployment, alertname: str, instance: str, status: str, since: float, seen: int,
              timeout: float) -> float:
    """Seconds until the sink holds more than `seen` notifications of the alert since `since`, the last with
    `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        states = _alert_states(deployment, alertname, instance, since)
        if len(states) > seen and states[-1] == status:
            return time.monotonic() - started
        time.sleep(2)
    pytest.fail(f"no {status} {alertname} for {instance} reached the sink within {timeout:.0f} s "
                f"(seen since the test started: {_alert_states(deployment, alertname, instance, since)})")


def _run(deployment: Deployment, host: str, command: str) -> None:
    deployment.lab.ssh(host, command)


#: RedisMemoryNearLimit's `for` (2 min) + a scrape and an evaluation (<= 10 s) + group_wait (5 s), with room.
MEMORY_FIRE_BOUND_SECONDS = 210
#: Keys without a TTL the test writes (1 MB each): above 90 % of the lab's 256 MiB maxmemory.
FILL_KEYS, FILL_BYTES = 250, 1_000_000
FILL_PREFIX = "e2e:monitoring:fill:"

#: Runs on cache1: the admin ACL user's password arrives on stdin (never in argv), then RESP commands go to
#: redis-cli --pipe, which reports how many replies were errors (OOM once only keys without a TTL are left).
_PIPE = """
import subprocess, sys
password = sys.stdin.readline().strip()
action, count, size, prefix, cli = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
def command(*words):
    parts = [w if isinstance(w, bytes) else str(w).encode() for w in words]
    return b"*%d\\r\\n" % len(parts) + b"".join(b"$%d\\r\\n%s\\r\\n" % (len(p), p) for p in parts)
body = command("AUTH", "admin", password)
for index in range(count):
    key = prefix + str(index)
    body += command("SET", key, b"x" * size) if action == "fill" else command("UNLINK", key)
result = subprocess.run([*cli, "--pipe"], input=body, capture_output=True)
print(result.stdout.decode().strip().splitlines()[-1] if result.stdout else result.stderr.decode())
"""


def _redis_pipe(deployment: Deployment, action: str) -> str:
    """Fill Redis with FILL_KEYS keys without a TTL, or unlink them, as the admin user (password on stdin)."""
    lab = deployment.lab
    password = deployed_secret(lab, "cache1", "redis_admin_password")
    command = f"python3 -c {shlex.quote(_PIPE)} {action} {FILL_KEYS} {FILL_BYTES} {FILL_PREFIX} {redis_cli(lab)}"
    result = subprocess.run(["ssh", "-F", str(lab.ssh_config), "cache1", command], input=password + "\n",
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"cache1: {action} failed: {result.stderr}"
    return result.stdout.strip()


@dataclass
class RedisFill:
    since: float  # Unix time of the fill's start: notifications before it belong to other tests
    started: float  # time.monotonic() of the fill's start
    result: str  # redis-cli --pipe's summary
    emptied: str = ""  # the unlink's summary, once the keys are gone


@pytest.fixture(scope="module", autouse=True)
def redis_fill(deployed_split: Deployment) -> Iterator[RedisFill]:
    """Redis filled with FILL_KEYS keys without a TTL for the module; removed by the memory test, or here."""
    since, started = time.time(), time.monotonic()
    fill = RedisFill(since, started, _redis_pipe(deployed_split, "fill"))
    try:
        yield fill
    finally:
        if not fill.emptied:
            _redis_pipe(deployed_split, "unlink")


def test_an_app_host_stopped_fires_instance_down_at_the_sink_and_it_resolves_when_back(
        deployed_split: Deployment) -> None:
    instance, since = "app1:8000", time.time()
    _run(deployed_split, "app1", f"sudo systemctl stop {APP_UNIT}")
    try:
        fired = _wait_for(deployed_split, "InstanceDown", instance, "firing", since, 0, FIRE_BOUND_SECONDS)
    finally:
        _run(deployed_split, "app1", f"sudo systemctl start {APP_UNIT}")
    resolved = _wait_for(deployed_split, "InstanceDown", instance, "resolved", since, 1, RESOLVE_BOUND_SECONDS)
    print(f"\nInstanceDown {instance}: firing at the sink {fired:.0f} s after the stop (for: 60 s); "
          f"resolved {resolved:.0f} s after the start")
    # Only the stopped host's app target fired: the other app host kept serving and being scraped.
    others = [alert["labels"]["instance"] for notification in _notifications(deployed_split, since)
              for alert in notification["alerts"] if alert["labels"].get("alertname") == "InstanceDown"
              and alert["status"] == "firing" and alert["labels"].get("instance") != instance]
    assert not others, f"InstanceDown fired for other targets too: {sorted(set(others))}"


def test_redis_filled_with_keys_it_cannot_evict_fires_the_memory_alert_and_it_resolves(
        deployed_split: Deployment, redis_fill: RedisFill) -> None:
    instance = "cache1:9121"
    try:
        _wait_for(deployed_split, "RedisMemoryNearLimit", instance, "firing", redis_fill.since, 0,
                  MEMORY_FIRE_BOUND_SECONDS - (time.monotonic() - redis_fill.started))
        fired = time.monotonic() - redis_fill.started
        # The site kept answering: the app treats a refused cache write as a miss.
        status = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                 f"https://{deployed_split.lab.hosts['lb1']}/api/jobs/featured"],
                                capture_output=True, text=True, timeout=30, check=False).stdout
        assert status == "200", f"the site answered {status} while Redis was full"
    finally:
        redis_fill.emptied = _redis_pipe(deployed_split, "unlink")
    resolved = _wait_for(deployed_split, "RedisMemoryNearLimit", instance, "resolved", redis_fill.since, 1,
                         RESOLVE_BOUND_SECONDS)
    print(f"\nRedisMemoryNearLimit {instance}: fill ({redis_fill.result}); firing at the sink {fired:.0f} s after "
          f"the fill started (for: 2 min); after the unlink ({redis_fill.emptied}) resolved in {resolved:.0f} s; "
          f"{time.monotonic() - redis_fill.started:.0f} s in all")
