"""Install Prometheus, Alertmanager and the blackbox exporter; write their files (checked before they land);
restart a service when its command line changed, reload it when only its configuration did."""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common import packages, services
from roles.common.files import put_checked, put_managed, put_path
from roles.monitor import manifest
from roles.monitor.checks import CHECK
from tsdeploy.rolespec import Context, ManagedFile

def apply(ctx: Context) -> None:
    packages.install(name="Install Prometheus, Alertmanager and the blackbox exporter from Debian",
                     packages=manifest.packages(ctx))
    put_path(ctx, manifest.RULES_PATH)
    rules = [manifest.ALERT_RULES, *([manifest.RECORDING_RULES] if manifest.RECORDING_RULES.applies_to(ctx) else [])]
    _service(ctx, manifest.PROMETHEUS, manifest.PROMETHEUS_DEFAULT, [manifest.PROMETHEUS_CONF, *rules])
    _service(ctx, manifest.ALERTMANAGER, manifest.ALERTMANAGER_DEFAULT, [manifest.ALERTMANAGER_CONF])
    if manifest.SITE_ACME_CA.applies_to(ctx):
        # Read by the blackbox exporter at each probe: in place before its configuration names it.
        put_managed(ctx, manifest.SITE_ACME_CA, name="Write the ACME CA bundle the site probe verifies against")
    _service(ctx, manifest.BLACKBOX, manifest.BLACKBOX_DEFAULT, [manifest.BLACKBOX_CONF])
    if ctx["monitor"]["sink"]:
        put_path(ctx, manifest.SCRIPT_DIR)
        script = put_managed(ctx, manifest.SINK_SCRIPT, name="Install the local alert sink")
        unit = put_managed(ctx, manifest.SINK_UNIT, name="Write the alert sink's unit")
        systemd.daemon_reload(name="Reload systemd because the alert sink's unit changed", _if=unit.did_change)
        services.restarted(name="Restart the alert sink because it changed", service=manifest.SINK,
                           _if=lambda: script.did_change() or unit.did_change())
        services.running(name="Run the alert sink at boot", service=manifest.SINK)


def _service(ctx: Context, service: str, default: ManagedFile, configs: list[ManagedFile]) -> None:
    """A restart when the command line changed (read only at start); else a reload (SIGHUP) when the
    configuration did."""
    config = put_checked(ctx, configs, check=CHECK, name=f"Write {service}'s configuration")
    command_line = put_managed(ctx, default, name=f"Write {service}'s command line: listen on localhost only")
    services.restarted(name=f"Restart {service} because its command line changed", service=service,
                       _if=command_line.did_change)
    services.running(name=f"Run {service} at boot", service=service)
    systemd.service(name=f"Reload {service} because its configuration changed", service=service,
                    reloaded=True, _if=lambda: config.did_change() and not command_line.did_change())
