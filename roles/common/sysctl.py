"""Network sysctls (linux-baseline sysctl-01..17) everywhere; kernel-wide ones only outside containers."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FactBase
from pyinfra.operations import server

from roles.common.manifest import SYSCTL_FILE as PERSIST_FILE
from tsdeploy.rolespec import Context


class ContainerType(FactBase):
    """The container technology the host runs in (`systemd-nspawn`, `docker`, ...), or "" on a VM/metal."""

    def command(self) -> str:
        return "systemd-detect-virt --container || true"

    def process(self, output: list[str]) -> str:
        value = "".join(output).strip()
        return "" if value == "none" else value


def apply(ctx: Context) -> None:
    for key, value in ctx["common"]["network_sysctls"].items():
        server.sysctl(name=f"Set {key} = {value} (linux-baseline network sysctl)", key=key, value=value,
                      persist=True, persist_file=PERSIST_FILE)
    container = host.get_fact(ContainerType)
    if container:
        skipped = ", ".join(ctx["common"]["kernel_sysctls"])
        logger.warning(f"{host.print_prefix}Skipping kernel-wide sysctls inside a {container} container "
                       f"(only the host kernel can set them): {skipped}")
        return
    for key, value in ctx["common"]["kernel_sysctls"].items():
        server.sysctl(name=f"Set {key} = {value} (linux-baseline kernel sysctl)", key=key, value=value,
                      persist=True, persist_file=PERSIST_FILE)
