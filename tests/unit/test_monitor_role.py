"""The monitor and exporters roles as rendered for the split lab: what Prometheus scrapes, who may reach each
exporter, what Alertmanager sends where, and that Prometheus's, Alertmanager's and the blackbox exporter's own
checkers accept the files (promtool, amtool, `--config.check`: the checks the deploy runs on the candidates).

An inventory without a monitor host gets nothing of either role. Skipped without promtool, amtool or the
blackbox exporter (`make system-deps` installs them).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time
import urllib.request

import pytest
import yaml

from roles.exporters import manifest as exporters_manifest
from roles.monitor import manifest as monitor_manifest
from roles.redis import manifest as redis_manifest
from redis_server import free_port
from test_rendering_golden import LAB_SECRETS, _lab_inventory
from tsdeploy import ROOT
from tsdeploy import inventory as inventory_module
from tsdeploy import manifest
from tsdeploy.context import build_context
from tsdeploy.inventory import InventoryError
from tsdeploy.lab import pki

MONITOR_ADDRESS = "198.18.0.16"


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> inventory_module.Inventory:
    return inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("monitor-split"), "split"))


@pytest.fixture(scope="module")
def monitor_ctx(split) -> dict:
    return build_context(split, "monitor1")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make system-deps)")
    return path


def _scrape_targets(prometheus_yml: str) -> dict[str, list[tuple[str, str, str]]]:
    """job -> [(address, host, instance)] of the static targets."""
    document = yaml.safe_load(prometheus_yml)
    return {job["job_name"]: [(target, group["labels"].get("host"), group["labels"].get("instance"))
                              for group in job["static_configs"] for target in group["targets"]]
            for job in document["scrape_configs"]}


def test_prometheus_scrapes_every_hosts_node_exporter_and_each_service_on_its_private_address(monitor_ctx) -> None:
    jobs = _scrape_targets(monitor_manifest.PROMETHEUS_CONF.content(monitor_ctx))
    assert [host for _, host, _ in jobs["node"]] == ["db1", "backup1", "cache1", "app1", "app2", "lb1", "monitor1"]
    assert jobs["postgres"] == [("198.18.0.10:9187", "db1", "db1:9187")]
    assert jobs["nginx"] == [("198.18.0.15:9113", "lb1", "lb1:9113")]
    assert jobs["app"] == [("198.18.0.13:8000", "app1", "app1:8000"), ("198.18.0.14:8000", "app2", "app2:8000")]
    # The site as users reach it: through nginx and TLS, probed by the local blackbox exporter.
    assert jobs["site"] == [("https://198.18.0.15/health", "lb1", None)]


def test_prometheus_alertmanager_and_the_blackbox_exporter_listen_on_localhost_only(monitor_ctx) -> None:
    for default in (monitor_manifest.PROMETHEUS_DEFAULT, monitor_manifest.ALERTMANAGER_DEFAULT,
                    monitor_manifest.BLACKBOX_DEFAULT):
        text = default.content(monitor_ctx)
        assert "--web.listen-address=127.0.0.1:" in text, default.path
    # Alertmanager's gossip port (9094 on every address by default) is closed: there is one Alertmanager.
    assert "--cluster.listen-address= " in monitor_manifest.ALERTMANAGER_DEFAULT.content(monitor_ctx)


def test_the_rule_files_reach_prometheus_as_the_bundle_ships_them(monitor_ctx) -> None:
    alerts = (ROOT / "templates" / "monitor" / "alerts.yml").read_text()
    assert monitor_manifest.ALERT_RULES.content(monitor_ctx) == alerts
    assert "{{ $labels.instance }}" in monitor_manifest.ALERT_RULES.content(monitor_ctx)


def test_each_exporter_port_is_open_to_the_monitor_host_alone(split) -> None:
    expected = {"db1": {9100, 9187}, "lb1": {9100, 9113}, "app1": {9100, 8000}, "cache1": {9100, 9121}}
    for host, ports in expected.items():
        rules = build_context(split, host)["common"]["firewall_rules"]
        monitor_ports = {rule["port"] for rule in rules if MONITOR_ADDRESS in rule["sources"]}
        assert monitor_ports == ports, host
        for rule in rules:
            if rule["port"] in (9100, 9187, 9121, 9113):
                assert rule["sources"] == [MONITOR_ADDRESS], (host, rule)


def test_every_exporter_listens_on_its_hosts_private_address(split) -> None:
    db = build_context(split, "db1")
    assert 'ARGS="--web.listen-address=198.18.0.10:9187"' in exporters_manifest.POSTGRES_DEFAULT.content(db)
    # Peer authentication over the socket as the pg_monitor role: no password in the file.
    assert "DATA_SOURCE_NAME='host=/run/postgresql port=5432 user=prometheus dbname=postgres'" in \
        exporters_manifest.POSTGRES_DEFAULT.content(db)
    lb = build_context(split, "lb1")
    assert ("-web.listen-address=198.18.0.15:9113 -nginx.scrape-uri=http://127.0.0.1:8089/stub_status"
            in exporters_manifest.NGINX_DEFAULT.content(lb))
    cache = build_context(split, "cache1")
    assert exporters_manifest.packages(cache) == ["prometheus-node-exporter", "prometheus-redis-exporter"]
    # Its own ACL user, over TLS verified with the CA, the password in a file: never on the command line, no
    # CONFIG command.
    redis_args = exporters_manifest.REDIS_DEFAULT.content(cache)
    assert ("--redis.addr=rediss://198.18.0.12:6380 --tls-ca-cert-file=/etc/ssl/tsdeploy/ca.pem --redis.user=exporter "
            "--redis.password-file=/etc/prometheus/redis-exporter-password.json --config-command=-") in redis_args
    assert LAB_SECRETS["vault_redis_exporter_password"] not in redis_args
    assert exporters_manifest.REDIS_PASSWORD.secret and exporters_manifest.REDIS_PASSWORD.mode == "640"


def test_the_lab_sends_alerts_and_their_resolution_to_the_local_sink(monitor_ctx) -> None:
    document = yaml.safe_load(monitor_manifest.ALERTMANAGER_CONF.content(monitor_ctx))
    receiver, = document["receivers"]
    assert receiver["webhook_configs"] == [{"url": "http://127.0.0.1:9095/", "send_resolved": True}]
    assert document["route"]["receiver"] == receiver["name"]


def test_promtool_accepts_the_configuration_and_every_rule_file(monitor_ctx, tmp_path) -> None:
    promtool = _tool("promtool")
    rules = tmp_path / "rules"
    rules.mkdir()
    for item in (monitor_manifest.ALERT_RULES, monitor_manifest.RECORDING_RULES):
        if item.applies_to(monitor_ctx):
            (rules / pathlib.PurePath(item.dest(monitor_ctx)).name).write_text(item.content(monitor_ctx))
    conf = monitor_manifest.PROMETHEUS_CONF.content(monitor_ctx).replace(
        monitor_ctx["monitor"]["rules_dir"], str(rules))
    (tmp_path / "prometheus.yml").write_text(conf)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 0 rule files found" not in result.stdout


def test_amtool_and_the_blackbox_exporter_accept_their_configuration(monitor_ctx, tmp_path) -> None:
    amtool, blackbox = _tool("amtool"), _tool("prometheus-blackbox-exporter")
    (tmp_path / "alertmanager.yml").write_text(monitor_manifest.ALERTMANAGER_CONF.content(monitor_ctx))
    (tmp_path / "blackbox.yml").write_text(monitor_manifest.BLACKBOX_CONF.content(monitor_ctx))
    checked = subprocess.run([amtool, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = subprocess.run([blackbox, "--config.check", f"--config.file={tmp_path / 'blackbox.yml'}"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_candidate_check_rejects_a_broken_rule_file(monitor_ctx, tmp_path) -> None:
    from roles.monitor.checks import CHECK

    promtool = _tool("promtool")
    broken = tmp_path / "talentsphere-alerts.yml.tsdeploy-candidate"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: up ==\n")
    script = CHECK.script({monitor_manifest.ALERT_RULES.path: str(broken)})
    assert script.startswith("promtool check rules ")
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False,
                            env={"PATH": str(pathlib.Path(promtool).parent) + ":/usr/bin:/bin"})
    assert result.returncode != 0


def _with_main_vars(split_dir: pathlib.Path, **changes) -> pathlib.Path:
    main = split_dir / "group_vars" / "all" / "main.yml"
    document = yaml.safe_load(main.read_text())
    document.update(changes)
    main.write_text(yaml.safe_dump(document))
    return split_dir


def test_a_monitor_host_without_any_receiver_is_refused_naming_the_variables(tmp_path) -> None:
    inventory = _with_main_vars(_lab_inventory(tmp_path, "split"), monitor_alert_sink=False)
    with pytest.raises(InventoryError) as raised:
        inventory_module.load(inventory)
    assert any("monitor1: Alertmanager has no receiver" in problem and "monitor_alert_webhook_urls" in problem
               for problem in raised.value.problems)


def test_email_alerts_need_all_three_variables(tmp_path) -> None:
    inventory = _with_main_vars(_lab_inventory(tmp_path, "split"), monitor_alert_email_to="oncall@example.org")
    with pytest.raises(InventoryError) as raised:
        inventory_module.load(inventory)
    assert any("monitor_alert_email_from" in problem and "monitor_alert_smarthost" in problem
               for problem in raised.value.problems)


def test_a_webhook_url_that_is_not_http_is_refused(tmp_path) -> None:
    inventory = _with_main_vars(_lab_inventory(tmp_path, "split"), monitor_alert_webhook_urls=["ftp://x/"])
    with pytest.raises(InventoryError) as raised:
        inventory_module.load(inventory)
    assert any("monitor_alert_webhook_urls" in problem and "ftp://x/" in problem for problem in raised.value.problems)


def test_an_inventory_without_a_monitor_host_gets_no_exporter_and_no_port() -> None:
    example = inventory_module.load(ROOT / "inventories" / "production.example", secrets=False, files=False)
    assert not example.hosts_in("monitor")
    for host in example.hosts:
        ctx = build_context(example, host)
        assert not ctx["exporters"]["enabled"]
        assert not [item for item in manifest.files_for(ctx) if item.role == "exporters"]
        assert exporters_manifest.packages(ctx) == []
        assert not [rule for rule in ctx["common"]["firewall_rules"] if rule["port"] in (9100, 9187, 9121, 9113)]
        # Nor an ACL user for an exporter that does not run.
        if "redis" in ctx:
            assert "user exporter" not in redis_manifest.ACL.content(ctx)


def test_a_monitor_host_needs_the_redis_exporters_password_in_the_vault(tmp_path) -> None:
    inventory = _with_main_vars(_lab_inventory(tmp_path, "split"), redis_exporter_password="")
    with pytest.raises(InventoryError) as raised:
        inventory_module.load(inventory)
    assert any(problem.startswith("cache1: redis_exporter_password is not set") and
               "vault_redis_exporter_password" in problem for problem in raised.value.problems)


def test_the_redis_exporter_reads_everything_it_exports_as_its_acl_user_and_nothing_else(split, tmp_path) -> None:
    """The real Redis with the rendered ACL file, the real exporter with the rendered arguments: every metric the
    alert rules read is there, no scrape error, and the exporter's user is refused keys and CONFIG."""
    redis_server, exporter = _tool("redis-server"), _tool("prometheus-redis-exporter")
    cache = build_context(split, "cache1")
    password = LAB_SECRETS["vault_redis_exporter_password"]
    (tmp_path / "users.acl").write_text(redis_manifest.ACL.content(cache))
    port, web = free_port(), free_port()
    # TLS only, as deployed: the exporter verifies the certificate (issued for 127.0.0.1 here) with the CA.
    ca = pki.ensure_ca(tmp_path / "pki", "unit")
    cert, key = pki.ensure_host_cert(tmp_path / "pki", ca, "cache1", "127.0.0.1")
    addr = f"rediss://127.0.0.1:{port}"
    (tmp_path / "password.json").write_text(f'{{"{addr}": "{password}"}}')
    processes = [subprocess.Popen([redis_server, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                                   "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca[0]),
                                   "--tls-auth-clients", "no", "--bind", "127.0.0.1", "--aclfile",
                                   str(tmp_path / "users.acl"), "--dir", str(tmp_path), "--maxmemory", "64mb",
                                   "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(0.5)
        args = exporters_manifest.REDIS_DEFAULT.content(cache).split('ARGS="', 1)[1].rsplit('"', 1)[0].split()
        args = [f"--web.listen-address=127.0.0.1:{web}" if arg.startswith("--web.listen-address") else
                f"--redis.addr={addr}" if arg.startswith("--redis.addr") else
                f"--redis.password-file={tmp_path / 'password.json'}" if arg.startswith("--redis.password-file")
                else f"--tls-ca-cert-file={ca[0]}" if arg.startswith("--tls-ca-cert-file") else arg for arg in args]
        assert f"--tls-ca-cert-file={ca[0]}" in args
        processes.append(subprocess.Popen([exporter, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        metrics = ""
        for _ in range(50):
            try:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=2).read().decode()
                if "redis_up 1" in metrics:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert "redis_up 1" in metrics
        assert 'redis_exporter_last_scrape_error{err=""} 0' in metrics
        for name in ("redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total"):
            assert any(line.startswith(name + " ") for line in metrics.splitlines()), name

        def as_exporter(*command: str) -> str:
            return subprocess.run(["redis-cli", "--tls", "--cacert", str(ca[0]), "-p", str(port), "--user", "exporter",
                                   "--no-auth-warning", *command],
                                  env={"REDISCLI_AUTH": password, "PATH": "/usr/bin:/bin"}, capture_output=True,
                                  text=True, check=False).stdout
        for refused in (("GET", "ts:x"), ("CONFIG", "GET", "maxmemory"), ("KEYS", "*"), ("FLUSHALL",)):
            assert as_exporter(*refused).startswith("NOPERM"), refused
        assert as_exporter("PING").strip() == "PONG"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
