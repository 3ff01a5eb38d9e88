"""The common role's operations on every host: deploy user and sudo, sshd, nftables, sysctls, security updates,
the journal and its optional forwarding."""

from pyinfra.api import deploy

from roles.common import ROLE, firewall, journald, sshd, syslog, sysctl, upgrades, users
from roles.runtime import host_context


@deploy("Common baseline", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Deploy user and sudo, sshd hardening, nftables for the host's roles, network sysctls, unattended-upgrades,
    the journal's bounds, its forwarding to a remote syslog endpoint when the inventory names one."""
    ctx = host_context()
    users.apply(ctx)
    sshd.apply(ctx)
    firewall.apply(ctx)
    sysctl.apply(ctx)
    upgrades.apply(ctx)
    journald.apply(ctx)
    syslog.apply(ctx)
