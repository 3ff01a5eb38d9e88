"""Every host: Debian security updates are applied by unattended-upgrades, from the security archive only.

Read with `apt-config dump`, which prints apt's effective configuration after every apt.conf.d file (Debian's
own and the deploy's drop-ins), i.e. exactly what unattended-upgrades will read on its next run.
"""

from __future__ import annotations

import re

import pytest

from verifyhosts import Target

#: apt's daily timers: the package lists refresh, then unattended-upgrades runs.
TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


def _enabled(target: Target) -> None:
    """Skip (not run, with the reason) on a host whose inventory switched unattended-upgrades off."""
    if not target.ctx["common"]["upgrades"]["enabled"]:
        pytest.skip(f"{target}: unattended_upgrades_enabled is false in the inventory: security updates are "
                    "left to the operator")


def _apt_config(target: Target) -> dict[str, list[str]]:
    """apt's effective configuration: key -> its values (a list's items under "key::")."""
    values: dict[str, list[str]] = {}
    for line in target.sudo_check("apt-config dump").splitlines():
        match = re.match(r'^(\S+) "(.*)";$', line)
        if match:
            values.setdefault(match.group(1), []).append(match.group(2))
    return values


def _codename(target: Target) -> str:
    release = dict(line.split("=", 1) for line in target.sudo_check("cat /etc/os-release").splitlines()
                   if "=" in line)
    return release["VERSION_CODENAME"].strip('"')


@pytest.mark.control("ts-patch-01")
def test_unattended_upgrades_is_installed(any_host: Target) -> None:
    _enabled(any_host)
    status = any_host.sudo("dpkg-query -W -f '${Status}' unattended-upgrades").stdout.strip()
    assert status == "install ok installed", f"{any_host}: unattended-upgrades is not installed ({status!r})"


@pytest.mark.control("ts-patch-01")
def test_apt_runs_unattended_upgrades_daily(any_host: Target) -> None:
    _enabled(any_host)
    config = _apt_config(any_host)
    periodic = {key: config.get(f"APT::Periodic::{key}", ["(unset)"])[-1]
                for key in ("Update-Package-Lists", "Unattended-Upgrade")}
    assert periodic == {"Update-Package-Lists": "1", "Unattended-Upgrade": "1"}, (
        f"{any_host}: apt's periodic settings are {periodic}; unattended-upgrades runs only when both are 1")


@pytest.mark.control("ts-patch-01")
@pytest.mark.parametrize("timer", TIMERS)
def test_apt_timer_is_enabled_and_active(any_host: Target, timer: str) -> None:
    _enabled(any_host)
    service = any_host.host.service(timer)
    assert service.is_enabled and service.is_running, (
        f"{any_host}: {timer} enabled={service.is_enabled} active={service.is_running}")


@pytest.mark.control("ts-patch-02")
def test_unattended_upgrades_installs_only_security_updates_of_the_hosts_release(any_host: Target) -> None:
    _enabled(any_host)
    origins = _apt_config(any_host).get("Unattended-Upgrade::Origins-Pattern::", [])
    want = [f"origin=Debian,codename={_codename(any_host)}-security,label=Debian-Security"]
    assert origins == want, f"{any_host}: unattended-upgrades' origins are {origins}, want only {want}"


@pytest.mark.control("ts-patch-02")
def test_unattended_upgrades_reboots_only_as_the_inventory_says(any_host: Target) -> None:
    _enabled(any_host)
    upgrades = any_host.ctx["common"]["upgrades"]
    config = _apt_config(any_host)
    effective = {key: config.get(f"Unattended-Upgrade::{key}", ["(unset)"])[-1]
                 for key in ("Automatic-Reboot", "Automatic-Reboot-Time")}
    want = {"Automatic-Reboot": "true" if upgrades["reboot"] else "false",
            "Automatic-Reboot-Time": upgrades["reboot_time"]}
    assert effective == want, (f"{any_host}: reboot policy {effective}, want {want} (unattended_upgrades_reboot, "
                               "unattended_upgrades_reboot_time)")
