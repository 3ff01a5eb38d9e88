"""The common role's public variables and their defaults (data only: read by tsdeploy.defaults by path)."""

DEFAULTS: dict[str, object] = {
    # The sudo user pyinfra connects as; sshd always lets it in (AllowUsers is never narrowed below it).
    "deploy_user": "deploy",
    # Networks allowed to reach sshd (nftables). Narrow this to your bastion/VPN in production.
    "ssh_allow_from": ["0.0.0.0/0", "::/0"],
    "ssh_port": 22,
    "debian_release": "bookworm",
}
