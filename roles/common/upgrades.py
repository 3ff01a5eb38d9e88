"""Debian security updates with unattended-upgrades: security origin only, apt's daily timers on, no surprise
reboots unless the inventory asks for them.

The deploy installs packages and never upgrades them; without this, nothing would patch a host between deploys.
Debian's package ships `20auto-upgrades` and `50unattended-upgrades` under ucf: edited in place, a later package
update would find them changed. So they stay as shipped, and two drop-ins of ours, read after them
(apt.conf.d is read in name order, a later value wins, `#clear` empties a list), set what runs: the origin list
reduced to Debian-Security of the host's release, the daily runs on (or off), and the reboot policy.
"""

from __future__ import annotations

from pyinfra.operations import systemd

from roles.common import manifest
from roles.common.files import put_managed
from tsdeploy.rolespec import Context

#: apt's timers: the first refreshes the package lists, the second runs unattended-upgrades (both daily, with a
#: random delay). Debian enables them with apt; a host built without them would never patch.
TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")


def apply(ctx: Context) -> None:
    upgrades = ctx["common"]["upgrades"]
    # The package itself comes with the role's other packages (manifest.packages, installed in users.py).
    put_managed(ctx, manifest.AUTO_UPGRADES,
                name="Run unattended-upgrades daily" if upgrades["enabled"]
                else "Switch off the daily unattended-upgrades run (unattended_upgrades_enabled: false)")
    put_managed(ctx, manifest.UNATTENDED_UPGRADES,
                name=f"Let unattended-upgrades install only {upgrades['security_codename']} updates, reboot "
                     + (f"at {upgrades['reboot_time']} when one asks for it" if upgrades["reboot"] else "never"))
    if upgrades["enabled"]:
        for timer in TIMERS:
            systemd.service(name=f"Keep apt's {timer} active and enabled (unattended-upgrades runs from it)",
                            service=timer, running=True, enabled=True)
