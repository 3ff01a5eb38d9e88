"""The common role's operations on every host: deploy user and sudo, sshd, nftables, sysctls."""

from pyinfra.api import deploy

from roles.common import ROLE, firewall, sshd, sysctl, users
from roles.runtime import host_context


@deploy("Common baseline", data_defaults=ROLE.defaults)
def tasks() -> None:
    """Deploy user and sudo, sshd hardening, nftables for the host's roles, network sysctls."""
    ctx = host_context()
    users.apply(ctx)
    sshd.apply(ctx)
    firewall.apply(ctx)
    sysctl.apply(ctx)
