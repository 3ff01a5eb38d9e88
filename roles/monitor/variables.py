"""The monitor role's variables: retention and intervals, and where Alertmanager sends the alerts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from roles.registry import Group
from tsdeploy import checks
from tsdeploy.rolespec import Variable

if TYPE_CHECKING:
    from tsdeploy.topology import Topology


def _optional_email(value: object) -> tuple[str, str] | None:
    if value == "":
        return None
    if isinstance(value, str) and value.count("@") == 1 and "." in value.split("@")[1] and " " not in value:
        return None
    return "is not an email address", 'write e.g. oncall@example.org, or "" for none'


VARIABLES: tuple[Variable, ...] = (
    Variable("monitor_retention", "15d", "how long Prometheus keeps samples (--storage.tsdb.retention.time)",
             checks.prometheus_duration),
    Variable("monitor_scrape_interval", "15s", "how often every target is scraped", checks.prometheus_duration),
    Variable("monitor_evaluation_interval", "15s", "how often the alert and recording rules are evaluated",
             checks.prometheus_duration),
    Variable("monitor_alert_webhook_urls", [], "Alertmanager webhook receivers (http(s) URLs), each gets every alert",
             checks.url_list),
    Variable("monitor_alert_email_to", "", "where Alertmanager mails alerts (empty: no email)", _optional_email),
    Variable("monitor_alert_email_from", "", "the From address of those mails", _optional_email),
    Variable("monitor_alert_smarthost", "", "the SMTP relay host:port that accepts mail from the monitor host",
             checks.host_port),
    Variable("monitor_alert_group_wait", "30s", "how long Alertmanager waits to group a new alert's first notice",
             checks.prometheus_duration),
    Variable("monitor_alert_group_interval", "5m",
             "how long it waits before telling about changes in a group (new or resolved alerts)",
             checks.prometheus_duration),
    Variable("monitor_alert_repeat_interval", "4h", "how often a still-firing alert is sent again",
             checks.prometheus_duration),
    Variable("monitor_alert_sink", False,
             "also deliver every alert to a local sink on the monitor host (a JSON-lines file; for labs and tests)",
             checks.boolean),
)


def receiver_problems(topology: Topology) -> list[str]:
    """Email needs its three variables together; an alert with nowhere to go is refused rather than dropped."""
    problems = []
    for host in topology.hosts(Group.MONITOR):
        v = topology.vars_of(host)
        email = [name for name in ("monitor_alert_email_to", "monitor_alert_email_from", "monitor_alert_smarthost")
                 if v[name] != ""]
        if email and len(email) < 3:
            problems.append(f"{host}: email alerts need monitor_alert_email_to, monitor_alert_email_from and "
                            f"monitor_alert_smarthost; only {', '.join(email)} set: set the others (or none)")
        if not email and not v["monitor_alert_webhook_urls"] and not v["monitor_alert_sink"]:
            problems.append(f"{host}: Alertmanager has no receiver: set monitor_alert_webhook_urls (a list of "
                            "URLs) or monitor_alert_email_to with monitor_alert_email_from and "
                            "monitor_alert_smarthost, so that an alert reaches someone")
    return problems


CHECKS: tuple[Callable[[Topology], list[str]], ...] = (receiver_problems,)
