"""The common role's variables: every host's identity, size, access and the TLS material other roles share."""

from __future__ import annotations

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
)


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
