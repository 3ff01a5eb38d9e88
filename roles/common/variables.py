"""The common role's variables: every host's identity, size, access and the TLS material other roles share."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

#: The inventory's CA certificate: installed on every host that has it. The roles that need it list it among
#: their own variables, which makes it required on their hosts: the app (its clients verify PostgreSQL's
#: certificate with it), PostgreSQL and nginx (verify and `tsdeploy smoke` check their certificates against it).
TLS_CA_CERT_FILE = Variable("tls_ca_cert_file", REQUIRED,
                            "CA certificate (PEM) on the control node; installed as /etc/ssl/tsdeploy/ca.pem",
                            checks.current_certificate, files=True)
#: The host's own certificate and key, for the roles that serve TLS (PostgreSQL on db hosts, nginx on lb hosts).
TLS_CERT_FILE = Variable("tls_cert_file", REQUIRED,
                         "the host's TLS certificate (PEM) on the control node, signed by tls_ca_cert_file's CA",
                         checks.current_certificate, files=True)
TLS_KEY_FILE = Variable("tls_key_file", REQUIRED, "the private key of tls_cert_file (PEM) on the control node",
                        checks.local_file, files=True)

_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
#: journald.conf(5) sizes: bytes with a K, M, G or T suffix (base 1024).
_JOURNAL_SIZE = re.compile(r"^[1-9][0-9]*[KMGT]$")
#: systemd.time(7) spans as journald reads MaxRetentionSec: a whole number and one of systemd's unit spellings
#: (m is minutes, M months).
_TIMESPAN = re.compile(r"^[1-9][0-9]* ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|"
                       r"years?)$")


#: A syslog endpoint's host: a DNS name or an IPv4 address (an IPv6 address is written in brackets, below).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ENDPOINT_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_TARGET_FIX = ('write the endpoint as "host:port", such as "logs.example.com:6514" (an IPv6 address in brackets: '
               '"[2001:db8::5]:6514"), or "" to forward nothing')


def parse_target(value: str) -> tuple[str, int]:
    """syslog_forward_target "host:port" -> (host, port), IPv6 without its brackets; ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(value)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ipaddress.ip_address(host).version != 6:  # ValueError for anything else
            raise ValueError(value)
    elif not _ENDPOINT_HOST.match(host) or (host.replace(".", "").isdigit() and not _is_ipv4(host)):
        raise ValueError(value)
    return host, int(port)


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def is_address(host: str) -> bool:
    """Whether an endpoint host is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def forward_target(value: Any) -> tuple[str, str] | None:
    """syslog_forward_target: "" (forwarding off) or "host:port" of the remote syslog endpoint."""
    if value == "":
        return None
    if not isinstance(value, str):
        return "is not a \"host:port\" string", _TARGET_FIX
    try:
        parse_target(value)
    except ValueError:
        return "is not host:port with a port from 1 to 65535", _TARGET_FIX
    return None


def optional_certificate(value: Any) -> tuple[str, str] | None:
    """syslog_forward_tls_ca_file: "" (no TLS) or a current certificate on the control node."""
    if value == "":
        return None
    if (problem := checks.current_certificate(value)) is not None:
        return problem[0], f"{problem[1]}; or \"\" to forward without TLS"
    return None


def reboot_time(value: Any) -> tuple[str, str] | None:
    """Unattended-Upgrade::Automatic-Reboot-Time as this role writes it: a 24-hour clock time, HH:MM."""
    if isinstance(value, str) and _CLOCK_TIME.match(value):
        return None
    return "is not a time of day as HH:MM", "write a quoted 24-hour time such as \"03:30\" (00:00 to 23:59)"


def journal_size(value: Any) -> tuple[str, str] | None:
    """SystemMaxUse as journald reads it: a whole number with a K, M, G or T suffix."""
    if isinstance(value, str) and _JOURNAL_SIZE.match(value):
        return None
    return "is not a journald size", "write a whole number with K, M, G or T, such as \"1G\" or \"500M\""


def timespan(value: Any) -> tuple[str, str] | None:
    """MaxRetentionSec as journald reads it: a whole number and one systemd time unit."""
    if isinstance(value, str) and _TIMESPAN.match(value):
        return None
    return ("is not a systemd time span",
            "write a whole number and one unit (s, min, h, d or day, w or week, month, year), such as \"1month\"")


VARIABLES: tuple[Variable, ...] = (
    Variable("private_address", REQUIRED,
             "the host's address on the private network: services bind to it, peers' firewalls and URLs use it",
             checks.address),
    Variable("host_memory", REQUIRED,
             "RAM to size for (e.g. 16GB): PostgreSQL tuning uses it, never live facts", checks.size),
    Variable("host_cpus", REQUIRED, "CPUs to size for: PGTune parallelism, Gunicorn workers",
             checks.integer(1, 1024)),
    Variable("debian_release", "bookworm",
             "bookworm or trixie: picks PostgreSQL (15/17) and the app's Python (3.11/3.13)",
             checks.choice("bookworm", "trixie")),
    Variable("deploy_user", "deploy",
             "the sudo user pyinfra connects as; sshd always lets it in (AllowUsers is never narrowed below it)",
             checks.identifier),
    Variable("ssh_allow_from", ["0.0.0.0/0", "::/0"],
             "networks allowed to reach sshd (nftables); narrow this to your bastion or VPN", checks.cidr_list),
    Variable("ssh_port", 22, "the sshd port opened in nftables"),
    Variable("unattended_upgrades_enabled", True,
             "install unattended-upgrades and let apt's daily timer apply Debian security updates",
             checks.boolean),
    # Off by default: a host that reboots on its own takes its service down unannounced (PostgreSQL, Redis and
    # a single lb have no standby); reboots stay a planned operation (roles/common/README.md).
    Variable("unattended_upgrades_reboot", False,
             "reboot automatically when an update asks for it (/var/run/reboot-required), at the reboot time",
             checks.boolean),
    Variable("unattended_upgrades_reboot_time", "03:30",
             "local time (HH:MM) of an automatic reboot, when unattended_upgrades_reboot is true",
             reboot_time),
    # The journal holds what the units print (Gunicorn and the app, pgBackRest's units, sshd); without a bound
    # it takes up to 10 % of /var (4 GiB at most) and keeps entries for as long as that lasts.
    Variable("journald_max_use", "1G",
             "most disk the persistent journal may use (SystemMaxUse); journald deletes the oldest entries beyond",
             journal_size),
    Variable("journald_max_retention", "1month",
             "journal entries older than this are deleted (MaxRetentionSec)", timespan),
    # Off by default: an inventory names its endpoint; only then is rsyslog installed (roles/common/syslog.py).
    Variable("syslog_forward_target", "",
             "remote syslog endpoint as \"host:port\" that rsyslog forwards the journal to; \"\" = no forwarding",
             forward_target),
    Variable("syslog_forward_protocol", "tcp",
             "tcp (queued on disk while the endpoint is down, optionally TLS) or udp (no TLS, lost when down)",
             checks.choice("tcp", "udp")),
    Variable("syslog_forward_tls_ca_file", "",
             "CA certificate (PEM) on the control node that signed the endpoint's certificate; set: TLS; \"\" = none",
             optional_certificate, files=True),
    Variable("syslog_forward_queue_max_disk", "1GB",
             "most disk rsyslog's forward queue may use while the endpoint is unreachable; newer messages are then "
             "not forwarded", checks.size),
)


def syslog_forward_problems(topology: Topology) -> list[str]:
    """TLS settings that cannot work with the rest of the forwarding settings (each value passed its own check).

    The CA file is only tested for being set, never opened: readers without the control-node files (verify
    without them, generate without certificates) get the same answer.
    """
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    problems = []
    for host in topology.inventory.hosts:
        merged = topology.vars_of(host)
        target, protocol = merged.get("syslog_forward_target"), merged.get("syslog_forward_protocol")
        ca_file = merged.get("syslog_forward_tls_ca_file")
        if not ca_file or not passes("syslog_forward_target", target) \
                or not passes("syslog_forward_protocol", protocol):
            continue
        where = {name: origin(topology.inventory, host, name)
                 for name in ("syslog_forward_target", "syslog_forward_protocol", "syslog_forward_tls_ca_file")}
        ca = f"syslog_forward_tls_ca_file = {ca_file!r} ({where['syslog_forward_tls_ca_file']})"
        if target == "":
            problems.append(f"{host}: {ca} is set but syslog_forward_target = '' ({where['syslog_forward_target']}) "
                            "forwards nothing; fix: set syslog_forward_target to the endpoint's \"host:port\", or "
                            "remove syslog_forward_tls_ca_file")
        elif protocol == "udp":
            problems.append(f"{host}: {ca} asks for TLS, which needs TCP, but syslog_forward_protocol = 'udp' "
                            f"({where['syslog_forward_protocol']}); fix: set syslog_forward_protocol to tcp, or "
                            "remove syslog_forward_tls_ca_file to send plain UDP")
        elif is_address(parse_target(target)[0]):
            problems.append(f"{host}: syslog_forward_target = {target!r} ({where['syslog_forward_target']}) is an "
                            f"IP address, but with TLS ({ca}) rsyslog verifies the endpoint's certificate by its "
                            "DNS name; fix: write the name its certificate holds, such as \"logs.example.com:6514\"")
    return problems


def address_problems(topology: Topology) -> list[str]:
    """Two hosts with one private address would receive each other's traffic and firewall rules."""
    from tsdeploy.validation import origin  # validation imports the roles: import it when checking

    inventory, seen, problems = topology.inventory, {}, []
    for host in inventory.hosts:
        address = topology.vars_of(host).get("private_address")
        if address in seen and seen[address] != host:
            problems.append(f"{host}: private_address {address!r} ({origin(inventory, host, 'private_address')})"
                            f" is also {seen[address]}'s; fix: give every host its own private address")
        seen.setdefault(address, host)
    return problems
