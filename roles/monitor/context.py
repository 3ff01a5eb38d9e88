"""The monitor role's context: every scrape target from the inventory, the rules, and Alertmanager's receivers.

Targets come from the other hosts' variables (addresses and ports), never from their contexts: the exporters
role reads whether a monitor host exists, so the monitor role must not read it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from roles.common.context import CA_CERT_PATH
from roles.nginx.context import site_ca
from roles.registry import Group
from tsdeploy import TEMPLATES_DIR

#: With a private ACME CA on the lb (nginx_acme_ca_file): its bundle, which the site probe verifies against.
SITE_ACME_CA_PATH = "/etc/prometheus/site-acme-ca.pem"

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

PROMETHEUS_LISTEN = "127.0.0.1:9090"
ALERTMANAGER_LISTEN = "127.0.0.1:9093"
BLACKBOX_LISTEN = "127.0.0.1:9115"
SINK_LISTEN = "127.0.0.1:9095"
SINK_DIR = "/var/lib/tsdeploy-alert-sink"
RULES_DIR = "/etc/prometheus/rules"
#: The rule files of the bundle (templates/monitor/), installed as they are into RULES_DIR.
RULE_FILES = {"alerts": "talentsphere-alerts.yml", "recording": "talentsphere-recording.yml"}


class Target(TypedDict):
    address: str
    host: str
    instance: str


class Job(TypedDict):
    name: str
    targets: list[Target]


class Email(TypedDict):
    to: str
    sender: str
    smarthost: str


class MonitorContext(TypedDict):
    """`ctx["monitor"]` on the monitor host."""

    prometheus_listen: str
    alertmanager_listen: str
    blackbox_listen: str
    retention: str
    scrape_interval: str
    evaluation_interval: str
    jobs: list[Job]
    site_url: str
    site_host: str
    site_server_name: str
    ca_file: str | None
    site_acme_ca_src: str
    rules_dir: str
    alert_rules: str
    recording_rules: str
    webhook_urls: list[str]
    email: Email | None
    group_wait: str
    group_interval: str
    repeat_interval: str
    sink: bool
    sink_listen: str
    sink_file: str


def _rules(name: str) -> str:
    path = TEMPLATES_DIR / "monitor" / f"{name}.yml"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _job(view: HostView, name: str, hosts: list[str], port_variable: str) -> Job:
    targets = []
    for host in hosts:
        v = view.topology.vars_of(host)
        port = int(v[port_variable])
        # The instance label names the host, not its address: alerts and `tsdeploy status` read "app1:8000".
        targets.append(Target(address=f"{v['private_address']}:{port}", host=host, instance=f"{host}:{port}"))
    return Job(name=name, targets=targets)


def derive(view: HostView) -> MonitorContext:
    v, topology = view.vars, view.topology
    me = view.name
    local = [Job(name="prometheus", targets=[Target(address=PROMETHEUS_LISTEN, host=me, instance=f"{me}:9090")]),
             Job(name="alertmanager", targets=[Target(address=ALERTMANAGER_LISTEN, host=me, instance=f"{me}:9093")])]
    jobs = [
        _job(view, "node", list(topology.inventory.hosts), "exporters_node_port"),
        _job(view, "postgres", topology.hosts(Group.DB), "exporters_postgres_port"),
        _job(view, "redis", topology.hosts(Group.CACHE), "exporters_redis_port"),
        _job(view, "nginx", topology.hosts(Group.LB), "exporters_nginx_port"),
        _job(view, "app", topology.hosts(Group.APP), "app_port"),
        *local,
    ]
    lb = topology.hosts(Group.LB)[0]
    lb_vars = topology.vars_of(lb)
    server_name = lb_vars["nginx_server_name"]
    # The CA the site's certificate chains to: the inventory's (installed on every host), or with an ACME CA its
    # bundle (a private CA: copied here) or the system's trust store (public: no ca_file).
    site_ca_src = site_ca(lb_vars)
    if lb_vars.get("nginx_acme_directory"):
        acme_ca_src, ca_file = site_ca_src or "", SITE_ACME_CA_PATH if site_ca_src else None
    else:
        acme_ca_src, ca_file = "", CA_CERT_PATH if site_ca_src else None
    email = None
    if v["monitor_alert_email_to"]:
        email = Email(to=v["monitor_alert_email_to"], sender=v["monitor_alert_email_from"],
                      smarthost=v["monitor_alert_smarthost"])
    sink_url = f"http://{SINK_LISTEN}/"
    return MonitorContext(
        prometheus_listen=PROMETHEUS_LISTEN,
        alertmanager_listen=ALERTMANAGER_LISTEN,
        blackbox_listen=BLACKBOX_LISTEN,
        retention=v["monitor_retention"],
        scrape_interval=v["monitor_scrape_interval"],
        evaluation_interval=v["monitor_evaluation_interval"],
        jobs=[job for job in jobs if job["targets"]],
        # The lb's own health answer through nginx and TLS: what a user reaches, checked against the CA.
        site_url=f"https://{server_name}/health",
        site_host=lb,
        site_server_name=server_name,
        ca_file=ca_file,
        site_acme_ca_src=acme_ca_src,
        rules_dir=RULES_DIR,
        alert_rules=_rules("alerts"),
        recording_rules=_rules("recording"),
        webhook_urls=[*v["monitor_alert_webhook_urls"], *([sink_url] if v["monitor_alert_sink"] else [])],
        email=email,
        group_wait=v["monitor_alert_group_wait"],
        group_interval=v["monitor_alert_group_interval"],
        repeat_interval=v["monitor_alert_repeat_interval"],
        sink=bool(v["monitor_alert_sink"]),
        sink_listen=SINK_LISTEN,
        sink_file=f"{SINK_DIR}/alerts.jsonl",
    )
