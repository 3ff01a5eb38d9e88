"""The common role: every host's baseline (deploy user, sshd, nftables, sysctls). See README.md."""

from pyinfra.api import deploy

from roles import host_context
from roles.common import firewall, sshd, sysctl, users
from roles.common.defaults import DEFAULTS


@deploy("Common baseline", data_defaults=DEFAULTS)
def common() -> None:
    """Deploy user and sudo, sshd hardening, nftables for the host's roles, network sysctls."""
    ctx = host_context()
    users.apply(ctx)
    sshd.apply(ctx)
    firewall.apply(ctx)
    sysctl.apply(ctx)
