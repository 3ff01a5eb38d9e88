"""`tsdeploy status`: the report it builds from a REAL Prometheus, and its errors.

Debian's Prometheus (2.42) runs here on free loopback ports with a throwaway storage directory, scraping every
second, as the monitor role will configure it: job names node, redis, app (and Prometheus itself), every target
labelled host="<inventory host>". It scrapes a real node exporter whose textfile directory holds a backup
metric, a real redis-server's exporter, and two HTTP servers exposing the app's own metric registry
(talentsphere.metrics) as app1 and app2, where the test records requests, 5xx among them; app3's target
answers nothing. It loads templates/monitor/alerts.yml and one rule that always fires. The report is read the
two ways the command can ask: directly over HTTP, and through the fact's own command run here with sh (what
SSH runs on the monitor host). The inventory's lb1 is scraped by nothing; db1 has no postgres exporter.

Skipped without prometheus, prometheus-node-exporter, redis-server or prometheus-redis-exporter
(`make system-deps` installs them).
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client import REGISTRY, start_http_server

from roles.monitor import facts
from talentsphere import metrics
from tsdeploy import status
from tsdeploy import cli
from redis_server import free_port
from test_inventory import write_inventory

ROOT = pathlib.Path(__file__).parents[2]
RULES = ROOT / "templates" / "monitor" / "alerts.yml"
PROGRAMS = ("prometheus", "prometheus-node-exporter", "redis-server", "prometheus-redis-exporter")
#: The inventory the report is read for, by group (as tsdeploy.status.inventory_groups gives it).
GROUPS = {"all": ["db1", "cache1", "app1", "app2", "app3", "lb1", "mon1"], "app": ["app1", "app2", "app3"],
          "db": ["db1"], "cache": ["cache1"]}
#: An endpoint no other test records, so that only this test's requests move its series.
ENDPOINT = "/api/status-test/<int:job_id>"
#: The last full and diff backups, this long before the test starts (the textfile's samples).
FULL_AGE, DIFF_AGE = 3 * 3600, 3600
ALWAYS_FIRING = {"groups": [{"name": "status-test", "rules": [{
    "alert": "StatusTestAlwaysFiring", "expr": "vector(1)", "labels": {"severity": "info", "host": "mon1"},
    "annotations": {"summary": "the status test's rule, which always fires"}}]}]}


def _installed(program: str) -> bool:
    return shutil.which(program, path="/usr/bin:/usr/sbin:/bin:/sbin") is not None


def _wait(what: str, ready, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _start(log: pathlib.Path, *command: str) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def _prometheus_config(ports: dict[str, int], rule_files: list[pathlib.Path]) -> dict:
    def job(name: str, *targets: tuple[str, int]) -> dict:
        return {"job_name": name, "static_configs": [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"host": host}} for host, port in targets]}

    return {
        # A scrape timeout as short as the interval: Prometheus refuses a longer one.
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            job("node", ("db1", ports["node"])),
            job("redis", ("cache1", ports["redis_exporter"])),
            job("app", ("app1", ports["app1"]), ("app2", ports["app2"]), ("app3", ports["dead"])),
            job("prometheus", ("mon1", ports["prometheus"])),
        ],
    }


def _record_requests() -> None:
    """What the app's after_request hook records (talentsphere/__init__.py): 7 fast answers, 3 slow 5xx."""
    for _ in range(7):
        metrics.REQUESTS.labels("GET", ENDPOINT, "200").inc()
        metrics.LATENCY.labels(ENDPOINT).observe(0.03)
    for _ in range(3):
        metrics.REQUESTS.labels("GET", ENDPOINT, "500").inc()
        metrics.LATENCY.labels(ENDPOINT).observe(0.3)


def _scraped_requests(ask: status.Ask) -> float:
    """The recorded requests as the last scrape of app1 and of app2 saw them (the smaller: both must see all)."""
    answer = ask({"n": f'sum by (host) (talentsphere_http_requests_total{{job="app",endpoint="{ENDPOINT}"}})'})
    counts = {s["metric"]["host"]: float(s["value"][1]) for s in answer["results"]["n"].get("samples") or []}
    return min(counts.get("app1", -1.0), counts.get("app2", -1.0))


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Prometheus that has scraped the test's requests; its base URL."""
    missing = [program for program in PROGRAMS if not _installed(program)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install prometheus prometheus-node-exporter "
                    "redis-server prometheus-redis-exporter)")
    base = tmp_path_factory.mktemp("prometheus")
    ports = {name: free_port() for name in ("prometheus", "node", "redis", "redis_exporter", "app1", "app2", "dead")}
    textfiles = base / "textfile"
    textfiles.mkdir()
    started = time.time()
    # What the backup role writes for node exporter's textfile collector, one sample per stanza and type.
    (textfiles / "talentsphere_backup.prom").write_text(
        "# HELP talentsphere_backup_last_success_timestamp_seconds When the last backup succeeded.\n"
        "# TYPE talentsphere_backup_last_success_timestamp_seconds gauge\n"
        f'talentsphere_backup_last_success_timestamp_seconds{{stanza="ts",type="full"}} {started - FULL_AGE:.0f}\n'
        f'talentsphere_backup_last_success_timestamp_seconds{{stanza="ts",type="diff"}} {started - DIFF_AGE:.0f}\n')
    (base / "always-firing.yml").write_text(yaml.safe_dump(ALWAYS_FIRING))
    (base / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(ports, [RULES, base / "always-firing.yml"])))
    # The series exist at 0 before the first scrape: Prometheus 2.42 sees no increase in a series' first
    # sample, so requests recorded into a series it has not seen yet would never show in rate().
    for code in ("200", "500"):
        metrics.REQUESTS.labels("GET", ENDPOINT, code)
    metrics.LATENCY.labels(ENDPOINT)
    servers = [start_http_server(ports[name], addr="127.0.0.1", registry=REGISTRY)[0] for name in ("app1", "app2")]
    processes = []
    try:
        processes.append(_start(base / "redis.log", "redis-server", "--port", str(ports["redis"]), "--bind",
                                "127.0.0.1", "--save", "", "--maxmemory", "64mb"))
        processes.append(_start(base / "redis-exporter.log", "prometheus-redis-exporter",
                                f"--web.listen-address=127.0.0.1:{ports['redis_exporter']}",
                                f"--redis.addr=redis://127.0.0.1:{ports['redis']}"))
        # Only cheap collectors: a scrape must finish within the 1 s timeout on a busy machine.
        processes.append(_start(base / "node-exporter.log", "prometheus-node-exporter",
                                f"--web.listen-address=127.0.0.1:{ports['node']}", "--collector.disable-defaults",
                                "--collector.textfile", f"--collector.textfile.directory={textfiles}",
                                "--collector.loadavg"))
        processes.append(_start(base / "prometheus.log", "prometheus", f"--config.file={base / 'prometheus.yml'}",
                                f"--storage.tsdb.path={base / 'data'}",
                                f"--web.listen-address=127.0.0.1:{ports['prometheus']}"))
        url = f"http://127.0.0.1:{ports['prometheus']}"
        ask = status.over_http(url, timeout=5)

        def targets_scraped() -> bool:
            answer = ask({"up": "up"})
            if answer["error"]:
                return False
            up = {(s["metric"]["job"], s["metric"]["host"]): s["value"][1] for s in answer["results"]["up"]["samples"]}
            return (up.get(("app", "app3")) == "0" and up.get(("redis", "cache1")) == "1"
                    and all(up.get(key) == "1" for key in (("node", "db1"), ("app", "app1"), ("app", "app2"))))

        try:
            # Generous: on a busy machine (2 shared cores) a 1 s scrape can time out and be retried.
            _wait("every target's first scrape", targets_scraped, timeout=120)
            _record_requests()
            _wait("the recorded requests in Prometheus", lambda: _scraped_requests(ask) == 10, timeout=120)
            _wait("the always-firing alert", lambda: any(a["state"] == "firing" for a in ask({})["alerts"]))
        except AssertionError as error:
            # Say which target was not up and why, as Prometheus saw it.
            seen = ask({"up": "up"})
            logs = "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in sorted(base.glob("*.log")))
            raise AssertionError(f"{error}\nup: {json.dumps(seen.get('results'))}\n{logs}") from None
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def report(prometheus: str) -> dict:
    return status.read_report(status.over_http(prometheus), GROUPS, "mon1")


def row(rows: list[dict], host: str) -> dict:
    return next(entry for entry in rows if entry["host"] == host)


# --- the report, from a real Prometheus ------------------------------------------------------------------------------


def test_each_host_lists_its_scrape_jobs_and_a_job_that_is_down_marks_the_host_down(report: dict) -> None:
    assert row(report["hosts"], "db1")["jobs"] == {"node": "up"}
    assert row(report["hosts"], "cache1")["jobs"] == {"redis": "up"}
    assert row(report["hosts"], "app1") | {"targets": None} == {"host": "app1", "state": "up", "jobs": {"app": "up"},
                                                                "targets": None}
    assert row(report["hosts"], "app3")["state"] == "down" and row(report["hosts"], "app3")["jobs"] == {"app": "down"}
    # A job the monitor role's list does not name still shows, after the known ones.
    assert row(report["hosts"], "mon1")["jobs"] == {"prometheus": "up"}


def test_the_hosts_are_in_inventory_order_and_one_prometheus_scrapes_nothing_of_reads_not_scraped(
        report: dict) -> None:
    assert [entry["host"] for entry in report["hosts"]] == GROUPS["all"]
    assert row(report["hosts"], "lb1") == {"host": "lb1", "state": "not scraped", "jobs": {}, "targets": {}}


def test_the_app_rows_give_request_rate_5xx_ratio_and_p95_per_host_and_in_total(report: dict) -> None:
    app = report["app"]
    assert app["window"] == "5m"
    one, two = row(app["hosts"], "app1"), row(app["hosts"], "app2")
    assert one["requests_per_second"] > 0
    # app1 and app2 expose the same registry, scraped at different moments: rate() extrapolates each host's
    # samples to the window on its own, so their rates differ a little; the total is their sum.
    assert two["requests_per_second"] > 0
    assert app["total"]["requests_per_second"] == pytest.approx(one["requests_per_second"]
                                                                + two["requests_per_second"])
    # 3 of the 10 requests answered 500.
    assert one["error_ratio"] == pytest.approx(0.3, abs=0.01)
    assert two["error_ratio"] == pytest.approx(0.3, abs=0.01)
    assert app["total"]["error_ratio"] == pytest.approx(0.3, abs=0.01)
    # The 9.5th of 10 requests lies in the 0.25-0.5 s bucket, which holds the 3 slow ones: interpolated,
    # 0.25 + 0.25 * 2.5 / 3 = 0.458 s.
    assert one["p95_seconds"] == pytest.approx(0.4583, abs=0.01)
    assert app["total"]["p95_seconds"] == pytest.approx(0.4583, abs=0.01)
    assert row(app["hosts"], "app3") == {"host": "app3", "requests_per_second": None, "error_ratio": None,
                                         "p95_seconds": None}


def test_redis_reads_memory_used_against_maxmemory(report: dict) -> None:
    (cache,) = report["redis"]
    assert cache["host"] == "cache1"
    assert cache["max_bytes"] == 64 * 1024 * 1024
    assert 0 < cache["used_bytes"] < cache["max_bytes"]


def test_postgres_without_an_exporter_has_no_data_and_no_replica(report: dict) -> None:
    assert report["postgres"] == [{"host": "db1", "connections": None, "max_connections": None, "replicas": []}]


def test_each_stanza_and_type_shows_its_last_backup_and_its_age(report: dict) -> None:
    backups = {item["type"]: item for item in report["backups"]}
    assert set(backups) == {"full", "diff"}
    assert {(item["host"], item["stanza"]) for item in report["backups"]} == {("db1", "ts")}
    # Ages at Prometheus's evaluation time: the textfile's ages plus the test's own minute or so.
    assert FULL_AGE <= backups["full"]["age_seconds"] < FULL_AGE + 120
    assert DIFF_AGE <= backups["diff"]["age_seconds"] < DIFF_AGE + 120


def test_firing_alerts_are_listed_with_their_severity_and_summary(report: dict) -> None:
    firing = report["alerts"]["firing"]
    assert [(alert["alertname"], alert["severity"], alert["host"], alert["summary"]) for alert in firing] == [
        ("StatusTestAlwaysFiring", "info", "mon1", "the status test's rule, which always fires")]
    # app3 has been down for seconds only: InstanceDown waits a minute (pending, not firing).
    assert report["alerts"]["pending"] >= 1
    assert report["errors"] == {}


def test_the_screen_shows_each_section(report: dict) -> None:
    screen = status.render(report)
    print("\n".join(screen))  # the example in docs/status.md comes from here (pytest -s)
    text = "\n".join(screen)
    assert screen[0].startswith("TalentSphere status from Prometheus on mon1 at ")
    assert any(line.split() == ["app3", "DOWN", "app", "DOWN"] for line in screen)
    assert any(line.split() == ["lb1", "not", "scraped", "-"] for line in screen)
    assert any(line.split()[:1] == ["total"] and "30.0 %" in line and "458 ms" in line for line in screen)
    assert any(line.split() == ["db1", "no", "data", "no", "replica"] for line in screen)
    assert any(line.startswith("cache1") and "/ 64.0 MiB" in line for line in screen)
    assert any(line.split()[:3] == ["db1", "ts", "full"] and "3 h 0 min" in line for line in screen)
    assert "alerts: 1 firing" in text
    assert "  info  StatusTestAlwaysFiring: the status test's rule, which always fires (since " in text


def test_json_prints_the_same_report_as_one_document(report: dict) -> None:
    assert json.loads(status.to_json(report)) == report


def test_the_facts_command_run_on_the_monitor_host_answers_as_direct_http_does(prometheus: str) -> None:
    # What SSH runs on the monitor host, run here with sh against this Prometheus (the fact's `url`).
    command = facts.PrometheusQueries().command(queries=json.dumps(status.queries()), url=prometheus)
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines()
    over_fact = status.build_report(facts.PrometheusQueries().process(output), GROUPS, "mon1")
    direct = status.read_report(status.over_http(prometheus), GROUPS, "mon1")
    assert over_fact["errors"] == {}
    assert [(entry["host"], entry["jobs"]) for entry in over_fact["hosts"]] == [
        (entry["host"], entry["jobs"]) for entry in direct["hosts"]]
    assert over_fact["backups"][0]["last_success"] == direct["backups"][0]["last_success"]
    assert [alert["alertname"] for alert in over_fact["alerts"]["firing"]] == ["StatusTestAlwaysFiring"]


def test_a_query_prometheus_refuses_carries_its_reason(prometheus: str) -> None:
    answer = status.over_http(prometheus)({"broken": "sum(rate(up[5m])"})
    assert answer["error"] is None
    assert answer["results"]["broken"]["error"].startswith("bad_data: ")


# --- the report, from recorded answers --------------------------------------------------------------------------------


def answer_with(**results: list[dict]) -> dict:
    """An answer of fetch with these queries' samples (evaluated at 1000 s) and every other query empty."""
    return {"time": 1000.0, "error": None, "alerts": [],
            "results": {name: {"samples": results.get(name, [])} for name in status.queries()}}


def sample(value: str, **labels: str) -> dict:
    return {"metric": labels, "value": [1000.0, value]}


def test_postgres_reads_connections_against_max_connections_and_each_replicas_lag() -> None:
    answer = answer_with(pg_connections=[sample("12", host="db1")], pg_max_connections=[sample("100", host="db1")],
                         pg_replication_lag=[sample("8192", host="db1", application_name="db2",
                                                    client_addr="10.0.0.20")])
    report = status.build_report(answer, GROUPS, "mon1")
    assert report["postgres"] == [{"host": "db1", "connections": 12.0, "max_connections": 100.0, "replicas": [
        {"name": "db2", "client_addr": "10.0.0.20", "lag_bytes": 8192.0}]}]
    assert any(line.split() == ["db1", "12", "/", "100", "(12", "%)", "db2", "8.0", "KiB", "behind"]
               for line in status.render(report))


def test_without_the_backup_metric_the_screen_says_no_backup_metric() -> None:
    report = status.build_report(answer_with(), GROUPS, "mon1")
    assert report["backups"] == []
    assert any(line.startswith("backups: no backup metric") for line in status.render(report))


def test_a_host_without_5xx_series_has_a_ratio_of_0_and_one_without_requests_has_none() -> None:
    answer = answer_with(app_requests=[sample("4", host="app1"), sample("0", host="app2")],
                         app_p95=[sample("NaN", host="app2")])
    app = status.build_report(answer, GROUPS, "mon1")["app"]
    assert [(entry["host"], entry["error_ratio"], entry["p95_seconds"]) for entry in app["hosts"]] == [
        ("app1", 0.0, None), ("app2", None, None), ("app3", None, None)]
    assert app["total"] == {"requests_per_second": 4.0, "error_ratio": 0.0, "p95_seconds": None}


def test_a_site_whose_probe_fails_is_down_though_the_blackbox_exporter_answers() -> None:
    answer = answer_with(up=[sample("1", job="site", host="lb1", instance="https://jobs.example.com/health")],
                         probe=[sample("0", job="site", host="lb1", instance="https://jobs.example.com/health")])
    lb = row(status.build_report(answer, GROUPS, "mon1")["hosts"], "lb1")
    assert (lb["state"], lb["jobs"]) == ("down", {"site": "down"})


def test_redis_without_maxmemory_reads_no_limit() -> None:
    answer = answer_with(redis_used=[sample("1048576", host="cache1")], redis_max=[sample("0", host="cache1")])
    assert any(line.split() == ["cache1", "1.0", "MiB", "(no", "limit)"]
               for line in status.render(status.build_report(answer, GROUPS, "mon1")))


def test_the_window_must_be_a_promql_duration() -> None:
    assert 'rate(talentsphere_http_requests_total{job="app"}[1h])' in status.queries("1h")["app_requests"]
    with pytest.raises(ValueError, match="not a PromQL duration"):
        status.queries("5 minutes")


def test_nan_never_reaches_the_json() -> None:
    report = status.build_report(answer_with(app_p95_total=[sample("NaN")]), GROUPS, "mon1")
    assert not math.isnan(json.loads(status.to_json(report))["app"]["total"]["p95_seconds"] or 0.0)


# --- errors ----------------------------------------------------------------------------------------------------------


def test_an_inventory_without_a_monitor_host_says_so_and_how_to_add_one(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path)
    result = CliRunner().invoke(status.status, [str(inventory)])
    assert result.exit_code == 1
    assert f"the inventory {inventory} has no monitor host" in result.output
    assert "add a host to the `monitor` group of its hosts.yml" in result.output
    assert f"tsdeploy deploy {inventory}" in result.output


def test_tsdeploy_lists_the_status_command() -> None:
    cli._register()
    assert cli.cli.commands["status"] is status.status


def test_a_prometheus_that_does_not_answer_names_the_monitor_host_and_what_to_check() -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(status.StatusError) as raised:
        status.read_report(status.over_http(nothing, timeout=2), GROUPS, "mon1")
    message = str(raised.value)
    assert message.startswith(f"Prometheus on the monitor host mon1 did not answer ({nothing} did not answer: ")
    assert "Connection refused" in message
    for check in ("systemctl status prometheus", "journalctl -u prometheus", "127.0.0.1:9090",
                  "tsdeploy deploy INVENTORY"):
        assert check in message


def test_the_facts_command_reports_a_prometheus_that_does_not_answer_in_its_data() -> None:
    command = facts.PrometheusQueries().command(queries={"up": "up"}, url=f"http://127.0.0.1:{free_port()}",
                                                timeout=2)
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert done.returncode == 0  # a failed fact command would fail the host in pyinfra and hide the reason
    answer = facts.PrometheusQueries().process(done.stdout.splitlines())
    assert "did not answer" in answer["error"] and answer["results"] == {}


def test_the_facts_command_without_python3_says_so() -> None:
    answer = facts.parse_output(["sh: 1: python3: not found", "", "rc=127"])
    assert answer["error"] == "the query program exited 127 on the monitor host: sh: 1: python3: not found"
