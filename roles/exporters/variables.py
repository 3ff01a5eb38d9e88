"""The exporters role's variables: the port of each exporter (each listens on the host's private address)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from roles.redis.variables import REDIS_EXPORTER_PASSWORD
from roles.registry import Group
from tsdeploy import checks
from tsdeploy.rolespec import Variable

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

VARIABLES: tuple[Variable, ...] = (
    Variable("exporters_node_port", 9100, "node exporter's port on every host; open to the monitor host only",
             checks.integer(1, 65535)),
    Variable("exporters_postgres_port", 9187, "the PostgreSQL exporter's port on db hosts; monitor host only",
             checks.integer(1, 65535)),
    Variable("exporters_redis_port", 9121, "the Redis exporter's port on cache hosts; monitor host only",
             checks.integer(1, 65535)),
    REDIS_EXPORTER_PASSWORD,
    Variable("exporters_nginx_port", 9113, "the nginx exporter's port on lb hosts; monitor host only",
             checks.integer(1, 65535)),
)


def redis_password_problems(topology: Topology) -> list[str]:
    """With a monitor host, the Redis exporter logs in as its own ACL user: its password must be in the vault."""
    if not topology.hosts(Group.MONITOR):
        return []
    return [f"{host}: redis_exporter_password is not set, and the monitor host scrapes this Redis through its "
            "exporter's own ACL user: generate one (`openssl rand -base64 32`), add it to the vault as "
            "vault_redis_exporter_password and map it in group_vars (redis_exporter_password: "
            "\"{{ vault_redis_exporter_password }}\")"
            for host in topology.hosts(Group.CACHE) if not topology.vars_of(host)["redis_exporter_password"]]


CHECKS: tuple[Callable[[Topology], list[str]], ...] = (redis_password_problems,)
