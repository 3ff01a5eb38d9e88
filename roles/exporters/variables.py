"""The exporters role's variables: the port of each exporter (each listens on the host's private address)."""

from __future__ import annotations

from tsdeploy import checks
from tsdeploy.rolespec import Variable

VARIABLES: tuple[Variable, ...] = (
    Variable("exporters_node_port", 9100, "node exporter's port on every host; open to the monitor host only",
             checks.integer(1, 65535)),
    Variable("exporters_postgres_port", 9187, "the PostgreSQL exporter's port on db hosts; monitor host only",
             checks.integer(1, 65535)),
    Variable("exporters_nginx_port", 9113, "the nginx exporter's port on lb hosts; monitor host only",
             checks.integer(1, 65535)),
)
