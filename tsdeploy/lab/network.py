"""The lab's network: a /24 per lab inside 198.18.0.0/15, a bridge, NAT for apt and IPv4 forwarding."""

from __future__ import annotations

import ipaddress
import json
from tsdeploy.lab.system import LabError, run

# RFC 2544 benchmarking range: reserved for network test labs, never routed on the Internet.
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
DEFAULT_LAB = "lab"
MAX_LABS = 2 ** (24 - LAB_RANGE.prefixlen)
FIRST_HOST_OFFSET = 10


def subnet_for(index: int) -> ipaddress.IPv4Network:
    """The /24 of lab number `index` (0 is 198.18.0.0/24, 256 is 198.19.0.0/24)."""
    if not 0 <= index < MAX_LABS:
        raise LabError(f"lab index {index} is outside 0..{MAX_LABS - 1}: 198.18.0.0/15 holds {MAX_LABS} labs")
    return ipaddress.IPv4Network((int(LAB_RANGE.network_address) + index * 256, 24))


def allocate_index(name: str, used: set[int]) -> int:
    """Pick the lab's subnet number: the default lab always gets 0, others the lowest free one from 1."""
    if name == DEFAULT_LAB:
        if 0 in used:
            raise LabError("subnet 198.18.0.0/24 is already recorded for another lab: run `tsdeploy lab down --all`")
        return 0
    for index in range(1, MAX_LABS):
        if index not in used:
            return index
    raise LabError(f"all {MAX_LABS - 1} lab subnets in {LAB_RANGE} are in use: remove labs with `tsdeploy lab down`")


def bridge_name(index: int) -> str:
    """The lab's bridge; at most 15 characters as Linux requires."""
    return f"tslab{index}"


def nft_table(index: int) -> str:
    """The lab's own nftables table (family ip), so that removing it touches no one else's rules."""
    return f"tsdeploy_lab{index}"


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The control node's address on the lab bridge, the hosts' default gateway."""
    return subnet.network_address + 1


def host_address(subnet: ipaddress.IPv4Network, position: int) -> ipaddress.IPv4Address:
    """The static address of the host at `position` in the topology (0-based)."""
    return subnet.network_address + FIRST_HOST_OFFSET + position


def addresses_in_use(subnet: ipaddress.IPv4Network) -> list[str]:
    """Interfaces on the machine that already carry an address inside `subnet` (a clash to refuse)."""
    links = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    return [
        link["ifname"]
        for link in links
        for addr in link.get("addr_info", [])
        if ipaddress.IPv4Address(addr["local"]) in subnet
    ]


def bridge_exists(bridge: str) -> bool:
    return run(["ip", "link", "show", "dev", bridge], check=False).returncode == 0


def ensure_bridge(bridge: str, subnet: ipaddress.IPv4Network) -> None:
    """Create the bridge with the gateway address and bring it up; an existing one is left as it is."""
    if not bridge_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    address = f"{gateway(subnet)}/{subnet.prefixlen}"
    if address not in run(["ip", "-4", "-o", "addr", "show", "dev", bridge]).stdout:
        run(["ip", "addr", "add", address, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def delete_bridge(bridge: str) -> None:
    if bridge_exists(bridge):
        run(["ip", "link", "delete", bridge, "type", "bridge"])


def default_route_interface() -> str:
    """The interface of the machine's default route: where lab traffic to the mirrors leaves."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "default"]).stdout or "[]")
    for route in routes:
        if route.get("dev"):
            return str(route["dev"])
    raise LabError("the machine has no IPv4 default route: the lab hosts need one to reach the Debian mirror")


def nat_ruleset(table: str, subnet: ipaddress.IPv4Network, bridge: str, uplink: str) -> str:
    """nft script that (re)creates the lab's table: hosts talk to each other and, masqueraded, to the uplink.

    Hosts on the same bridge pass the forward hook too when br_netfilter is active (it is on these machines),
    hence the bridge-to-bridge accept; traffic to other labs' bridges or other interfaces is dropped.
    """
    return f"""table ip {table}
delete table ip {table}
table ip {table} {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{bridge}" oifname "{bridge}" accept
        iifname "{bridge}" oifname "{uplink}" ip saddr {subnet} accept
        oifname "{bridge}" iifname "{uplink}" ct state established,related accept
        iifname "{bridge}" drop
        oifname "{bridge}" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {subnet} oifname "{uplink}" masquerade
    }}
}}
"""


def ensure_nat(table: str, subnet: ipaddress.IPv4Network, bridge: str) -> None:
    """Load the lab's nft table atomically (replacing an older copy of it)."""
    run(["nft", "-f", "-"], stdin=nat_ruleset(table, subnet, bridge, default_route_interface()))


def nft_table_exists(table: str) -> bool:
    return run(["nft", "list", "table", "ip", table], check=False).returncode == 0


def delete_nat(table: str) -> None:
    if nft_table_exists(table):
        run(["nft", "delete", "table", "ip", table])
