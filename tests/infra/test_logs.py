"""Every host: the journal is persistent and bounded as the inventory says; log files are rotated.

Read with `systemd-analyze cat-config systemd/journald.conf`, which prints journald's main file and then its
drop-ins in the order journald reads them: the last value of a key is the one it uses.
"""

from __future__ import annotations

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
