"""nftables per role: inbound dropped by default, each service port open only to the hosts that need it.

The ruleset is checked with `nft -c` as a candidate before it replaces /etc/nftables.conf (loaded at boot), and
loaded only when it landed. Before any of that, while pyinfra prepares the run (so before any host is touched),
the deploy makes sure the ruleset will not lock it out: the address its SSH session comes from, as the host sees
it, must be inside `ssh_allow_from` (`lockout_problem`).
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import server, systemd

from roles.common import manifest
from roles.common.files import Check, put_checked
from tsdeploy.rolespec import Context

CONF = manifest.NFTABLES.path


def _nft(paths: Mapping[str, str]) -> str:
    # -c: the kernel checks the whole batch (the ruleset replaces only our table) without committing it.
    return "\n".join(f"nft -c -f {shlex.quote(path)} || exit 1" for path in paths.values())


NFT = Check(tool="nft -c", script=_nft,
            hint="correct templates/common/nftables.conf.j2 (or the firewall variables) and deploy again")


class SshClientAddress(FactBase):
    """The address the deploy's SSH session comes from, as the host sees it (the first field of the session's
    SSH_CONNECTION); None when the connection is not SSH. Read without sudo, whose env_reset drops it."""

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    def process(self, output: list[str]) -> str | None:
        fields = " ".join(output).split()
        return fields[0] if fields else None

    def default(self) -> None:
        return None


def lockout_problem(host_name: str, client: str | None, allow_from: Sequence[str]) -> str | None:
    """Why applying the ruleset would lock the deploy out of `host_name`, or None when it would not.

    `client` is the address the deploy connects from as the host sees it (`SshClientAddress`; None when unknown,
    e.g. not over SSH, which nothing can lock out). nftables would drop the next SSH connection from an address
    outside `allow_from` (the ssh_allow_from networks): the rolling phase's and every later deploy's.
    """
    if not client:
        return None
    address = ipaddress.ip_address(client)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a dual-stack sshd
    if any(address in ipaddress.ip_network(network) for network in allow_from):
        return None
    single = f"{address}/{address.max_prefixlen}"
    return (f"{host_name}: the firewall would lock this deploy out: the deploy connects from {address} (as "
            f"{host_name} sees it, SSH_CONNECTION), which is not in ssh_allow_from {list(allow_from)}; nothing "
            f"was changed on any host; fix: add {single} (or its network) to ssh_allow_from in the inventory, or "
            "deploy from an address inside it")


def ssh_sources(ctx: Context) -> list[str]:
    """The networks the host's ruleset lets reach sshd (the ssh rule's sources: ssh_allow_from)."""
    port = ctx["common"]["ssh_port"]
    return [source for rule in ctx["common"]["firewall_rules"] if rule["port"] == port for source in rule["sources"]]


def check_not_locked_out(ctx: Context) -> None:
    """Refuse, while pyinfra prepares the run, a ruleset whose ssh rule leaves out the deploy's own address."""
    client = host.get_fact(SshClientAddress, _sudo=False)
    if problem := lockout_problem(host.name, client, ssh_sources(ctx)):
        raise OperationError(problem)


def apply(ctx: Context) -> None:
    check_not_locked_out(ctx)
    ports = ", ".join(str(rule["port"]) for rule in ctx["common"]["firewall_rules"])
    conf = put_checked(ctx, [manifest.NFTABLES], check=NFT,
                       name=f"Write the nftables ruleset: drop inbound except ports {ports} from their peers")
    server.shell(name="Load the nftables ruleset", commands=[f"nft -f {CONF}"], _if=conf.did_change)
    systemd.service(name="Load the nftables ruleset at boot", service="nftables", enabled=True)
