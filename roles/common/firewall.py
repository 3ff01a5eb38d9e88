"""nftables per role: inbound dropped by default, each service port open only to the hosts that need it."""

from __future__ import annotations

from pyinfra.operations import server, systemd

from roles.common import manifest
from roles.common.files import put_managed
from tsdeploy.rolespec import Context

CONF = manifest.NFTABLES.path


def apply(ctx: Context) -> None:
    ports = ", ".join(str(rule["port"]) for rule in ctx["common"]["firewall_rules"])
    conf = put_managed(ctx, manifest.NFTABLES,
                       name=f"Write the nftables ruleset: drop inbound except ports {ports} from their peers")
    check = server.shell(name="Check the nftables ruleset with nft -c before loading it",
                         commands=[f"nft -c -f {CONF}"], _if=conf.did_change)
    server.shell(name="Load the nftables ruleset", commands=[f"nft -f {CONF}"],
                 _if=lambda: conf.did_change() and check.did_succeed())
    systemd.service(name="Load the nftables ruleset at boot", service="nftables", enabled=True)
