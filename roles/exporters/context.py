"""The exporters role's context: which exporters a host runs, where each listens, who may scrape them."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from roles.common.context import CA_CERT_PATH
from roles.nginx.context import STATUS_URL
from roles.redis.context import EXPORTER_USER
from roles.registry import Group
from tsdeploy.rolespec import Inbound

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

#: Debian's default for node exporter's textfile collector: other roles (backup) write metrics there.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
#: The PostgreSQL role the exporter logs in as, over the local socket with peer authentication (no password):
#: Debian runs the exporter as the system user of the same name. Member of pg_monitor only.
POSTGRES_USER = "prometheus"
#: The Redis exporter's password, as the exporter's --redis.password-file reads it ({"<redis URL>": "<password>"}):
#: readable by the exporter's user only, never on its command line or in its environment.
REDIS_PASSWORD_FILE = "/etc/prometheus/redis-exporter-password.json"


class ExportersContext(TypedDict):
    """`ctx["exporters"]` on every host (the monitor role reads the ports from the inventory, not from here)."""

    enabled: bool
    monitor_addresses: list[str]
    node_listen: str
    textfile_dir: str
    postgres: bool
    postgres_listen: str
    postgres_user: str
    postgres_dsn: str
    nginx: bool
    nginx_listen: str
    nginx_status_url: str
    redis: bool
    redis_listen: str
    redis_addr: str
    redis_ca: str
    redis_user: str
    redis_password: str
    redis_password_file: str


def monitored(view: HostView) -> bool:
    """Exporters run only when a monitor host scrapes them: without one, an inventory gets nothing new."""
    return bool(view.topology.hosts(Group.MONITOR))


def inbound(view: HostView) -> list[Inbound]:
    if not monitored(view):
        return []
    v, sources = view.vars, view.addresses(Group.MONITOR)
    rules = [Inbound(int(v["exporters_node_port"]), sources, "node exporter from the monitor host")]
    if Group.DB in view.groups:
        rules.append(Inbound(int(v["exporters_postgres_port"]), sources, "PostgreSQL exporter from the monitor host"))
    if Group.CACHE in view.groups:
        rules.append(Inbound(int(v["exporters_redis_port"]), sources, "Redis exporter from the monitor host"))
    if Group.LB in view.groups:
        rules.append(Inbound(int(v["exporters_nginx_port"]), sources, "nginx exporter from the monitor host"))
    return rules


def derive(view: HostView) -> ExportersContext:
    v = view.vars
    cache = Group.CACHE in view.groups
    address = v["private_address"]
    return ExportersContext(
        enabled=monitored(view),
        monitor_addresses=view.addresses(Group.MONITOR),
        node_listen=f"{address}:{int(v['exporters_node_port'])}",
        textfile_dir=TEXTFILE_DIR,
        postgres=Group.DB in view.groups,
        postgres_listen=f"{address}:{int(v['exporters_postgres_port'])}",
        postgres_user=POSTGRES_USER,
        # libpq's key=value form: the socket directory and the cluster's port select the local cluster.
        postgres_dsn=f"host=/run/postgresql port={int(v['postgresql_port'])} user={POSTGRES_USER} dbname=postgres",
        nginx=Group.LB in view.groups,
        nginx_listen=f"{address}:{int(v['exporters_nginx_port'])}",
        nginx_status_url=STATUS_URL,
        redis=cache,
        redis_listen=f"{address}:{int(v['exporters_redis_port'])}",
        # Redis serves TCP with TLS only, verified like the app does it: the host's own private address (its
        # certificate names it) and the inventory's CA; the traffic stays on the host.
        redis_addr=f"rediss://{address}:{int(v['redis_port'])}",
        redis_ca=CA_CERT_PATH,
        redis_user=EXPORTER_USER,
        redis_password=v["redis_exporter_password"] if cache and monitored(view) else "",
        redis_password_file=REDIS_PASSWORD_FILE,
    )
