"""nftables per role: inbound dropped by default, each service port open only to the hosts that need it.

The ruleset is checked with `nft -c` as a candidate before it replaces /etc/nftables.conf (loaded at boot), and
loaded only when it landed.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

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


def apply(ctx: Context) -> None:
    ports = ", ".join(str(rule["port"]) for rule in ctx["common"]["firewall_rules"])
    conf = put_checked(ctx, [manifest.NFTABLES], check=NFT,
                       name=f"Write the nftables ruleset: drop inbound except ports {ports} from their peers")
    server.shell(name="Load the nftables ruleset", commands=[f"nft -f {CONF}"], _if=conf.did_change)
    systemd.service(name="Load the nftables ruleset at boot", service="nftables", enabled=True)
