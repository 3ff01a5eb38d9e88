"""What the monitor role manages on the monitor host: Prometheus's, Alertmanager's and the blackbox exporter's
configuration and command lines, the rule files, the optional alert sink, and the packages."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.monitor.context import RULE_FILES, RULES_DIR, SITE_ACME_CA_PATH

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
BLACKBOX = "prometheus-blackbox-exporter"
SINK = "tsdeploy-alert-sink"
#: Debian's service user of every Prometheus package.
USER = "prometheus"


def _file(template: str, path: str, trigger: str, *, group: str = "root", mode: str = "644",
          when=None) -> ManagedFile:
    return ManagedFile(f"monitor/{template}", path, "root", group, mode, template=f"monitor/{template}",
                       when=when, trigger=trigger)


def _sink(ctx: Context) -> bool:
    return ctx["monitor"]["sink"]


def _recording(ctx: Context) -> bool:
    return bool(ctx["monitor"]["recording_rules"])


# Command lines (/etc/default/<service>, read at start: a change restarts the service).
PROMETHEUS_DEFAULT = _file("prometheus.default.j2", "/etc/default/prometheus", PROMETHEUS)
ALERTMANAGER_DEFAULT = _file("prometheus-alertmanager.default.j2", "/etc/default/prometheus-alertmanager",
                             ALERTMANAGER)
BLACKBOX_DEFAULT = _file("prometheus-blackbox-exporter.default.j2", "/etc/default/prometheus-blackbox-exporter",
                         BLACKBOX)
DEFAULTS = ((PROMETHEUS_DEFAULT, PROMETHEUS), (ALERTMANAGER_DEFAULT, ALERTMANAGER), (BLACKBOX_DEFAULT, BLACKBOX))

# Configuration (reloaded on change, each checked by its own tool first).
PROMETHEUS_CONF = _file("prometheus.yml.j2", "/etc/prometheus/prometheus.yml", PROMETHEUS)
ALERT_RULES = _file("alert-rules.yml.j2", f"{RULES_DIR}/{RULE_FILES['alerts']}", PROMETHEUS)
RECORDING_RULES = _file("recording-rules.yml.j2", f"{RULES_DIR}/{RULE_FILES['recording']}", PROMETHEUS,
                        when=_recording)
# Webhook URLs may carry a token: readable by root and Alertmanager only.
ALERTMANAGER_CONF = _file("alertmanager.yml.j2", "/etc/prometheus/alertmanager.yml", ALERTMANAGER, group=USER,
                          mode="640")
BLACKBOX_CONF = _file("blackbox.yml.j2", "/etc/prometheus/blackbox.yml", BLACKBOX)
#: A private ACME CA's bundle (the lb's nginx_acme_ca_file): the site probe verifies the certificate with it.
SITE_ACME_CA = ManagedFile("monitor/site-acme-ca.pem", SITE_ACME_CA_PATH, "root", "root", "644",
                           source=("monitor", "site_acme_ca_src"), variable="nginx_acme_ca_file",
                           when=lambda ctx: bool(ctx["monitor"]["site_acme_ca_src"]), trigger=BLACKBOX)

SINK_SCRIPT = _file("alert-sink.py.j2", "/usr/local/lib/tsdeploy/alert-sink.py", SINK, mode="755", when=_sink)
SINK_UNIT = _file("tsdeploy-alert-sink.service.j2", "/etc/systemd/system/tsdeploy-alert-sink.service", SINK,
                  when=_sink)

FILES = (PROMETHEUS_DEFAULT, ALERTMANAGER_DEFAULT, BLACKBOX_DEFAULT, PROMETHEUS_CONF, ALERT_RULES,
         RECORDING_RULES, ALERTMANAGER_CONF, SITE_ACME_CA, BLACKBOX_CONF, SINK_SCRIPT, SINK_UNIT)

RULES_PATH = ManagedPath(RULES_DIR, "root", "root", "755", why="the alert and recording rules Prometheus loads")
SCRIPT_DIR = ManagedPath("/usr/local/lib/tsdeploy", "root", "root", "755", why="scripts the deploy installs",
                         when=_sink)
PATHS = (RULES_PATH, SCRIPT_DIR)


def packages(ctx: Context) -> list[str]:
    return [PROMETHEUS, ALERTMANAGER, BLACKBOX]
