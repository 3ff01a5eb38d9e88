"""Every host: the journal, where every service here logs, is persistent and bounded as the inventory says.

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
