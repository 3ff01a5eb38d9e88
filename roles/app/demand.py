"""The app tier's demand on PostgreSQL, read from the app hosts' variables (the postgres role sizes from it).

These read variables, not the app's derived context: the app's context itself reads PostgreSQL's, so the
database's sizing must not depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from roles.pgbouncer.context import server_connections
from roles.registry import Group
from tsdeploy import tuning

if TYPE_CHECKING:
    from tsdeploy.topology import Topology


def workers(v: dict[str, Any], cpus: int) -> int:
    """Gunicorn workers: the inventory's app_workers, or 2 x CPUs + 1 when it is 0."""
    return int(v["app_workers"]) or 2 * cpus + 1


def connection_demand(topology: Topology, headroom: int) -> tuning.Topology:
    """The app tier's connection demand; workers are counted per app host (CPU counts may differ). Behind
    pooler hosts, PostgreSQL sees only their server connections: each host's pool and reserve."""
    hosts = [topology.vars_of(name) for name in topology.hosts(Group.APP)]
    poolers = [topology.vars_of(name) for name in topology.hosts(Group.POOLER)]
    return tuning.Topology(app_hosts=max(len(hosts), 1),
                           workers=max((workers(v, int(v["host_cpus"])) for v in hosts), default=1),
                           pool_size=max((int(v["app_db_pool_size"]) for v in hosts), default=1),
                           max_overflow=max((int(v["app_db_max_overflow"]) for v in hosts), default=0),
                           headroom=headroom,
                           pooled=sum(server_connections(v) for v in poolers))


class DatabaseTimeouts(NamedTuple):
    """The web app's database timeouts, in seconds: connect (libpq), statement (0: none), breaker interval."""

    connect: int
    statement: float
    breaker_interval: float


def database_timeouts(topology: Topology) -> DatabaseTimeouts:
    """The app hosts' database timeouts (the tightest of each, should hosts differ)."""
    hosts = [topology.vars_of(name) for name in topology.hosts(Group.APP)]
    statements = [float(v["app_db_statement_timeout"]) for v in hosts]
    return DatabaseTimeouts(connect=min(int(v["app_db_connect_timeout"]) for v in hosts),
                            statement=max(statements) if 0 not in statements else 0,
                            breaker_interval=min(float(v["app_db_breaker_cooldown"]) for v in hosts))


def statement_timeout(topology: Topology) -> float:
    """The web app's statement timeout (seconds, app_db_statement_timeout; 0: none)."""
    return float(topology.vars_of(topology.hosts(Group.APP)[0])["app_db_statement_timeout"])


def slow_query_threshold(topology: Topology) -> float | int:
    """The app's SLOW_QUERY_THRESHOLD (seconds): PostgreSQL logs statements slower than it too."""
    return topology.vars_of(topology.hosts(Group.APP)[0])["app_slow_query_threshold"]
