"""Every host: the journal is persistent and bounded as the inventory says; log files are rotated; the journal is
forwarded to the inventory's syslog endpoint when it names one.

Read with `systemd-analyze cat-config systemd/journald.conf`, which prints journald's main file and then its
drop-ins in the order journald reads them: the last value of a key is the one it uses.
"""

from __future__ import annotations

import re
import shlex

import pytest

from verifyhosts import Target


def _journald_settings(target: Target) -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in target.sudo_check("systemd-analyze cat-config systemd/journald.conf").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


@pytest.mark.control("ts-log-01")
def test_journald_keeps_the_journal_on_disk_within_the_inventorys_bounds(any_host: Target) -> None:
    journal = any_host.ctx["common"]["journald"]
    settings = _journald_settings(any_host)
    wanted = {"Storage": "persistent", "SystemMaxUse": journal["max_use"],
              "MaxRetentionSec": journal["max_retention"]}
    effective = {key: settings.get(key, "(journald's default)") for key in wanted}
    assert effective == wanted, f"{any_host}: journald reads {effective}, the inventory asks for {wanted}"


@pytest.mark.control("ts-log-01")
def test_the_persistent_journal_directory_exists(any_host: Target) -> None:
    assert any_host.host.file("/var/log/journal").is_directory, (
        f"{any_host}: /var/log/journal is missing: journald keeps the journal in memory only (lost at reboot)")


@pytest.mark.control("ts-log-02")
def test_logrotate_is_installed(any_host: Target) -> None:
    status = any_host.sudo("dpkg-query -W -f '${Status}' logrotate").stdout.strip()
    assert status == "install ok installed", (
        f"{any_host}: logrotate is not installed ({status!r}): Debian's /etc/logrotate.d rules never run")


@pytest.mark.control("ts-log-02")
def test_logrotates_daily_timer_is_enabled_and_active(any_host: Target) -> None:
    service = any_host.host.service("logrotate.timer")
    assert service.is_enabled and service.is_running, f"{any_host}: logrotate.timer is not enabled and active"


@pytest.mark.control("ts-log-02")
def test_logrotate_accepts_every_rule_of_the_host(any_host: Target) -> None:
    # --debug reads every rule and says what it would do, rotating nothing and leaving its state file alone.
    result = any_host.sudo("logrotate --debug /etc/logrotate.conf")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.rc == 0 and not errors, f"{any_host}: logrotate --debug exited {result.rc}: {errors[:5]}"


def _forwarding(target: Target) -> dict:
    """The host's forwarding settings; skip (not run, with the reason) when its inventory names no endpoint."""
    forward = target.ctx["common"]["syslog_forward"]
    if not forward["enabled"]:
        pytest.skip(f"{target}: syslog_forward_target is empty in the inventory: the journal is not forwarded")
    return forward


@pytest.mark.control("ts-log-03")
def test_rsyslog_is_installed_for_forwarding(any_host: Target) -> None:
    forward = _forwarding(any_host)
    for package in ["rsyslog"] + (["rsyslog-gnutls"] if forward["tls"] else []):
        status = any_host.sudo(f"dpkg-query -W -f '${{Status}}' {package}").stdout.strip()
        assert status == "install ok installed", f"{any_host}: {package} is not installed ({status!r})"


@pytest.mark.control("ts-log-03")
def test_rsyslog_is_enabled_and_active(any_host: Target) -> None:
    _forwarding(any_host)
    service = any_host.host.service("rsyslog")
    assert service.is_enabled and service.is_running, (
        f"{any_host}: rsyslog enabled={service.is_enabled} active={service.is_running}: nothing is forwarded")


@pytest.mark.control("ts-log-03")
def test_rsyslogs_configuration_forwards_to_the_inventorys_endpoint(any_host: Target) -> None:
    forward = _forwarding(any_host)
    # -N1 reads the configuration as the running rsyslogd did (main file and includes), changing nothing.
    check = any_host.sudo("rsyslogd -N1")
    assert check.rc == 0, f"{any_host}: rsyslogd -N1 rejects the configuration: {check.stderr.strip()[-500:]}"
    included = any_host.sudo_check("cat /etc/rsyslog.conf")
    assert re.search(r"^\$IncludeConfig /etc/rsyslog\.d/\*\.conf\s*$", included, re.MULTILINE), (
        f"{any_host}: /etc/rsyslog.conf does not include /etc/rsyslog.d/*.conf: the forwarding drop-in is not read")
    text = any_host.sudo_check(f"cat {shlex.quote(forward['drop_in'])}")
    action = re.search(r'^action\((type="omfwd".*?)\)$', text, re.MULTILINE | re.DOTALL)
    parameters = dict(re.findall(r'([\w.]+)="([^"]*)"', action.group(1))) if action else {}
    wanted = {"target": forward["host"], "port": str(forward["port"]), "protocol": forward["protocol"]}
    if forward["tls"]:
        wanted |= {"StreamDriver": "gtls", "StreamDriverAuthMode": "x509/name",
                   "StreamDriverPermittedPeers": forward["host"]}
    found = {key: parameters.get(key, "(unset)") for key in wanted}
    assert found == wanted, f"{any_host}: {forward['drop_in']} forwards with {found}, the inventory asks for {wanted}"


@pytest.mark.control("ts-log-03")
def test_rsyslog_holds_a_connection_to_the_tcp_endpoint(any_host: Target) -> None:
    forward = _forwarding(any_host)
    if forward["protocol"] != "tcp":
        pytest.skip(f"{any_host}: UDP forwarding has no connection to check")
    # rsyslog keeps its TCP connection open once the first message went out (the journal always has some).
    addresses = {line.split()[0] for line in any_host.sudo_check(
        f"getent ahosts {shlex.quote(forward['host'])}").splitlines() if line.strip()}
    sockets = any_host.sudo_check(f"ss -Htnp state established '( dport = :{forward['port']} )'")
    connected = [line for line in sockets.splitlines() if "rsyslogd" in line
                 and any(f"{address}:{forward['port']}" in line.replace("[", "").replace("]", "")
                         for address in addresses)]
    assert connected, (f"{any_host}: rsyslogd has no established connection to {forward['target']} "
                       f"({', '.join(sorted(addresses)) or 'does not resolve'}): the endpoint is unreachable or "
                       "refuses it; messages wait in the forward queue (journalctl -u rsyslog)")
