"""What the common role manages on every host: the files, directories and packages its operations read."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.common.context import CA_CERT_PATH, RSYSLOG_DROP_IN, SYSLOG_CA_PATH

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
# Forwarding the journal to a remote syslog endpoint: only on hosts whose inventory names one (roles/common/syslog.py).
SYSLOG_CA = ManagedFile("common/syslog-ca.pem", SYSLOG_CA_PATH, "root", "root", "644",
                        source=("common", "syslog_ca_src"), variable="syslog_forward_tls_ca_file",
                        when=lambda ctx: ctx["common"]["syslog_forward"]["tls"], trigger="rsyslog")
RSYSLOG_FORWARD = ManagedFile("common/rsyslog-forward.conf.j2", RSYSLOG_DROP_IN, "root", "root", "644",
                              template="common/rsyslog-forward.conf.j2",
                              when=lambda ctx: ctx["common"]["syslog_forward"]["enabled"], trigger="rsyslog")
FILES = (SUDOERS, CA_CERT, SSHD_DROP_IN, NFTABLES, AUTO_UPGRADES, UNATTENDED_UPGRADES, JOURNALD, SYSLOG_CA,
         RSYSLOG_FORWARD)

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
    forward = ctx["common"]["syslog_forward"]
    # rsyslog only when the inventory names an endpoint (it forwards the journal); its TLS driver only for TLS.
    syslog = (["rsyslog"] if forward["enabled"] else []) + (["rsyslog-gnutls"] if forward["tls"] else [])
    return ["sudo", "nftables", "ca-certificates", "logrotate", *upgrades, *syslog]


def private_temp_dir(deploy_user: str) -> str:
    """The deploy user's 0700 upload directory for secret uploads."""
    return f"{UPLOAD_ROOT}/{deploy_user}"
