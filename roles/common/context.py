"""The common role's context: the host's facts, its firewall (collected from its roles), sysctls, the CA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from tsdeploy.rolespec import Inbound
from tsdeploy.units import format_size, parse_size

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

#: Debian release -> the CPython version of its python3 (the app's wheelhouse is built for it).
PYTHON_VERSIONS = {"bookworm": "3.11", "trixie": "3.13"}
#: Where the common role installs the inventory's CA certificate on every host (clients verify with it).
CA_CERT_PATH = "/etc/ssl/tsdeploy/ca.pem"

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


def derive(view: HostView) -> CommonContext:
    v = view.vars
    return CommonContext(deploy_user=v["deploy_user"], ssh_port=int(v["ssh_port"]), firewall_rules=_firewall(view),
                         network_sysctls=dict(NETWORK_SYSCTLS), kernel_sysctls=dict(KERNEL_SYSCTLS),
                         ca_cert_src=v.get("tls_ca_cert_file"), ca_cert_path=CA_CERT_PATH,
                         upgrades=UpgradesContext(enabled=bool(v["unattended_upgrades_enabled"]),
                                                  reboot=bool(v["unattended_upgrades_reboot"]),
                                                  reboot_time=str(v["unattended_upgrades_reboot_time"]),
                                                  security_codename=f"{v['debian_release']}-security"),
                         journald=JournaldContext(max_use=str(v["journald_max_use"]),
                                                  max_retention=str(v["journald_max_retention"])))
