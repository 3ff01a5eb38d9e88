"""What the common role manages on every host: the files, directories and packages its operations read."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.common.context import CA_CERT_PATH

SUDOERS = ManagedFile("common/sudoers.j2", lambda ctx: f"/etc/sudoers.d/tsdeploy-{ctx['common']['deploy_user']}",
                      "root", "root", "440", template="common/sudoers.j2", trigger="sudoers")
CA_CERT = ManagedFile("common/ca.pem", CA_CERT_PATH, "root", "root", "644", source=("common", "ca_cert_src"),
                      variable="tls_ca_cert_file", when=lambda ctx: bool(ctx["common"]["ca_cert_src"]),
                      trigger="ca")
SSHD_DROP_IN = ManagedFile("common/sshd_hardening.conf.j2", "/etc/ssh/sshd_config.d/10-tsdeploy.conf",
                           "root", "root", "600", template="common/sshd_hardening.conf.j2", trigger="sshd")
NFTABLES = ManagedFile("common/nftables.conf.j2", "/etc/nftables.conf", "root", "root", "600",
                       template="common/nftables.conf.j2", trigger="nftables")
# unattended-upgrades: own drop-ins read after Debian's ucf-managed 20auto-upgrades and 50unattended-upgrades
# (left untouched, so a package update never asks about them); see roles/common/upgrades.py.
AUTO_UPGRADES = ManagedFile("common/auto-upgrades.j2", "/etc/apt/apt.conf.d/21tsdeploy-auto-upgrades",
                            "root", "root", "644", template="common/auto-upgrades.j2", trigger="upgrades")
UNATTENDED_UPGRADES = ManagedFile("common/unattended-upgrades.j2",
                                  "/etc/apt/apt.conf.d/51tsdeploy-unattended-upgrades", "root", "root", "644",
                                  template="common/unattended-upgrades.j2", trigger="upgrades")
JOURNALD = ManagedFile("common/journald.conf.j2", "/etc/systemd/journald.conf.d/60-tsdeploy.conf",
                       "root", "root", "644", template="common/journald.conf.j2", trigger="journald")
FILES = (SUDOERS, CA_CERT, SSHD_DROP_IN, NFTABLES, AUTO_UPGRADES, UNATTENDED_UPGRADES, JOURNALD)

CA_DIR = ManagedPath("/etc/ssl/tsdeploy", "root", "root", "755", why="for the inventory's CA certificate")
SSHD_CONFIG = ManagedPath("/etc/ssh/sshd_config", "root", "root", "600", directory=False,
                          why="readable by root only (sshd-27)")
JOURNALD_DIR = ManagedPath("/etc/systemd/journald.conf.d", "root", "root", "755",
                           why="for the journal's retention drop-in")
PATHS = (CA_DIR, SSHD_CONFIG, JOURNALD_DIR)

#: /etc/sysctl.d drop-in the sysctls persist to (pyinfra's server.sysctl edits it line by line).
SYSCTL_FILE = "/etc/sysctl.d/60-tsdeploy.conf"
#: Root of the deploy users' private 0700 upload directories (secret files pass through them).
UPLOAD_ROOT = "/var/lib/tsdeploy-upload"


def packages(ctx: Context) -> list[str]:
    upgrades = ["unattended-upgrades"] if ctx["common"]["upgrades"]["enabled"] else []
    # logrotate: Debian's packages ship their rotation (nginx's access log daily, PostgreSQL's log weekly) as
    # /etc/logrotate.d files that do nothing without it, and a minimal Debian does not install it.
    return ["sudo", "nftables", "ca-certificates", "logrotate", *upgrades]


def private_temp_dir(deploy_user: str) -> str:
    """The deploy user's 0700 upload directory for secret uploads."""
    return f"{UPLOAD_ROOT}/{deploy_user}"
