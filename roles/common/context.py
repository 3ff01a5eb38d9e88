"""The common role's context: the host's facts, its firewall (collected from its roles), sysctls, the CA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from roles.common.variables import parse_target
from tsdeploy.rolespec import Inbound
from tsdeploy.units import format_size, parse_size

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

#: Debian release -> the CPython version of its python3 (the app's wheelhouse is built for it).
PYTHON_VERSIONS = {"bookworm": "3.11", "trixie": "3.13"}
#: Where the common role installs the inventory's CA certificate on every host (clients verify with it).
CA_CERT_PATH = "/etc/ssl/tsdeploy/ca.pem"
#: rsyslog's forwarding drop-in. Debian's rsyslog.conf includes /etc/rsyslog.d/*.conf before its own rules, so the
#: drop-in's `stop` keeps those rules (a second, local copy of the journal in /var/log) from running.
RSYSLOG_DROP_IN = "/etc/rsyslog.d/10-tsdeploy-forward.conf"
#: The CA that signed the syslog endpoint's certificate (often not the inventory's own CA).
SYSLOG_CA_PATH = "/etc/ssl/tsdeploy/syslog-ca.pem"
#: Name of the forward action and of its queue files in rsyslog's work directory (/var/spool/rsyslog on Debian).
SYSLOG_QUEUE_NAME = "tsdeploy-forward"

#: linux-baseline sysctl-01..17 that live in each network namespace, so they apply inside containers too.
NETWORK_SYSCTLS = {
    "net.ipv4.ip_forward": 0,
    "net.ipv6.conf.all.forwarding": 0,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv6.conf.all.accept_redirects": 0,
    "net.ipv6.conf.default.accept_redirects": 0,
    "net.ipv4.conf.all.secure_redirects": 0,
    "net.ipv4.conf.default.secure_redirects": 0,
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.default.accept_source_route": 0,
    "net.ipv6.conf.all.accept_source_route": 0,
    "net.ipv6.conf.default.accept_source_route": 0,
    "net.ipv4.conf.all.rp_filter": 1,
    "net.ipv4.conf.default.rp_filter": 1,
    "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.conf.default.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv6.conf.all.accept_ra": 0,
    "net.ipv6.conf.default.accept_ra": 0,
}
#: Kernel-wide settings: only settable on VMs and bare metal; the common role skips them in containers.
KERNEL_SYSCTLS = {
    "kernel.randomize_va_space": 2,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "fs.suid_dumpable": 0,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
}


class HostFacts(TypedDict):
    """`ctx["host"]`: what the inventory says about the host itself (never live facts)."""

    name: str
    groups: list[str]
    private_address: str
    memory: int
    memory_human: str
    cpus: int
    debian_release: str
    python_version: str
    deploy_user: str


class FirewallRule(TypedDict):
    port: int
    sources: list[str]
    why: str
    v4: list[str]
    v6: list[str]


class UpgradesContext(TypedDict):
    """`ctx["common"]["upgrades"]`: unattended-upgrades' settings (roles/common/upgrades.py)."""

    enabled: bool
    reboot: bool
    reboot_time: str
    #: The Debian-Security suite of the host's release (bookworm-security): the only origin it installs from.
    security_codename: str


class JournaldContext(TypedDict):
    """`ctx["common"]["journald"]`: the journal's bounds (roles/common/journald.py)."""

    max_use: str
    max_retention: str


class SyslogForwardContext(TypedDict):
    """`ctx["common"]["syslog_forward"]`: forwarding the journal to a syslog endpoint (roles/common/syslog.py)."""

    enabled: bool
    #: The inventory's "host:port" ("" when off); host without brackets, and port, as omfwd takes them.
    target: str
    host: str
    port: int
    protocol: str
    tls: bool
    ca_path: str
    #: Bytes, from the inventory's 1024-based size: written as a number, so rsyslog's own suffix rules never apply.
    queue_max_disk: int
    queue_name: str
    drop_in: str


class CommonContext(TypedDict):
    """`ctx["common"]`."""

    deploy_user: str
    ssh_port: int
    firewall_rules: list[FirewallRule]
    network_sysctls: dict[str, int]
    kernel_sysctls: dict[str, int]
    ca_cert_src: str | None
    ca_cert_path: str
    upgrades: UpgradesContext
    journald: JournaldContext
    syslog_forward: SyslogForwardContext
    #: The control-node path of syslog_forward_tls_ca_file (None: no TLS), the source of manifest.SYSLOG_CA.
    syslog_ca_src: str | None


def describe_host(name: str, groups: list[str], v: dict[str, Any]) -> HostFacts:
    memory = parse_size(v["host_memory"])
    return HostFacts(name=name, groups=groups, private_address=str(v["private_address"]), memory=memory,
                     memory_human=format_size(memory), cpus=int(v["host_cpus"]),
                     debian_release=v["debian_release"], python_version=PYTHON_VERSIONS[v["debian_release"]],
                     deploy_user=v["deploy_user"])


def inbound(view: HostView) -> list[Inbound]:
    return [Inbound(int(view.vars["ssh_port"]), list(view.vars["ssh_allow_from"]), "ssh for the deploy")]


def _firewall(view: HostView) -> list[FirewallRule]:
    """Inbound allow rules of every role on this host, in deploy order (everything else is dropped)."""
    rules = []
    for entry in view.roles():
        for rule in entry.spec.inbound(view):
            rules.append(FirewallRule(port=rule.port, sources=rule.sources, why=rule.why,
                                      v4=[source for source in rule.sources if ":" not in source],
                                      v6=[source for source in rule.sources if ":" in source]))
    return rules


def _syslog_forward(v: dict[str, Any]) -> SyslogForwardContext:
    target = str(v["syslog_forward_target"])
    host, port = parse_target(target) if target else ("", 0)
    return SyslogForwardContext(enabled=bool(target), target=target, host=host, port=port,
                                protocol=str(v["syslog_forward_protocol"]),
                                tls=bool(target and v["syslog_forward_tls_ca_file"]), ca_path=SYSLOG_CA_PATH,
                                queue_max_disk=parse_size(v["syslog_forward_queue_max_disk"]),
                                queue_name=SYSLOG_QUEUE_NAME, drop_in=RSYSLOG_DROP_IN)


def derive(view: HostView) -> CommonContext:
    v = view.vars
    forward = _syslog_forward(v)
    return CommonContext(deploy_user=v["deploy_user"], ssh_port=int(v["ssh_port"]), firewall_rules=_firewall(view),
                         network_sysctls=dict(NETWORK_SYSCTLS), kernel_sysctls=dict(KERNEL_SYSCTLS),
                         ca_cert_src=v.get("tls_ca_cert_file"), ca_cert_path=CA_CERT_PATH,
                         upgrades=UpgradesContext(enabled=bool(v["unattended_upgrades_enabled"]),
                                                  reboot=bool(v["unattended_upgrades_reboot"]),
                                                  reboot_time=str(v["unattended_upgrades_reboot_time"]),
                                                  security_codename=f"{v['debian_release']}-security"),
                         journald=JournaldContext(max_use=str(v["journald_max_use"]),
                                                  max_retention=str(v["journald_max_retention"])),
                         syslog_forward=forward,
                         syslog_ca_src=str(v["syslog_forward_tls_ca_file"]) if forward["tls"] else None)
