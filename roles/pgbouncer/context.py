"""The pgbouncer role's context: where it listens, the database it pools, how it authenticates clients.

Reads the postgres role's variables and the db group's hosts, never the postgres role's context: the postgres
role sizes max_connections from the pooler hosts' pools (a read of this role's variables), so the reverse would
be a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from roles.common.context import CA_CERT_PATH
from roles.registry import Group
from tsdeploy.rolespec import ADDRESS_FACT, Inbound

if TYPE_CHECKING:
    from roles.app.demand import DatabaseTimeouts
    from tsdeploy.topology import HostView

CONF_DIR = "/etc/pgbouncer"
TLS_DIR = f"{CONF_DIR}/tls"
#: Debian's PgBouncer runs as postgres and keeps its socket beside PostgreSQL's.
RUN_AS = "postgres"
SOCKET_DIR = "/run/postgresql"
#: The schema and function the db host creates in the app's database for PgBouncer's auth_query: SECURITY
#: DEFINER, so the pooler's login role reads one row of pg_shadow, the runtime role's, and nothing else.
AUTH_SCHEMA = "pgbouncer"
AUTH_FUNCTION = f"{AUTH_SCHEMA}.get_auth"


class PgbouncerContext(TypedDict):
    """`ctx["pgbouncer"]` on a pooler host."""

    address: str
    listen: list[str]
    port: int
    socket_dir: str
    db_name: str
    server_host: str
    server_port: int
    server_tls: bool
    app_user: str
    pool_mode: str
    default_pool_size: int
    reserve_pool_size: int
    max_client_conn: int
    max_db_connections: int
    server_connect_timeout: int
    tcp_user_timeout_ms: int
    server_login_retry: float
    query_wait_timeout: int
    reserve_pool_timeout: float
    query_timeout: float
    auth_user: str
    auth_password: str
    auth_query: str
    conf_dir: str
    tls_cert: str
    tls_key: str
    tls_ca: str
    tls_cert_src: str
    tls_key_src: str


def inbound(view: HostView) -> list[Inbound]:
    return [Inbound(int(view.vars["pgbouncer_port"]), view.addresses(Group.APP), "PgBouncer from app hosts")]


def server_connections(vars_: dict) -> int:
    """The most server connections one pooler host opens to PostgreSQL: its pool and the reserve."""
    return int(vars_["pgbouncer_default_pool_size"]) + int(vars_["pgbouncer_reserve_pool_size"])


def failure_timeouts(app: DatabaseTimeouts) -> dict[str, float | int]:
    """How PgBouncer behaves while PostgreSQL is away, from the app's own timeouts: the app behind it must
    fail as fast, and serve again as soon, as when it connects to PostgreSQL directly (a JSON 503 within its
    connect timeout, answers again within its breaker interval of PostgreSQL's return).

    - server_connect_timeout, tcp_user_timeout: PgBouncer gives up connecting, and drops a server connection
      whose sent data goes unacknowledged, after the app's connect timeout (the app's libpq rules).
    - server_login_retry: after a failed connection, PgBouncer refuses new logins at once and tries again
      after the app's breaker interval (PgBouncer's default, 15 s, would hold the service down that long after
      a PostgreSQL restart).
    - query_wait_timeout: a query waits for a server connection at most the app's connect timeout (the
      default, 120 s, would hold every app thread while PostgreSQL is unreachable); the reserve pool opens
      after half of it.
    - query_timeout: PgBouncer cancels a query a second after the statement timeout PostgreSQL should have
      applied, which only a network fault prevents.
    """
    return {"server_connect_timeout": app.connect, "tcp_user_timeout_ms": app.connect * 1000,
            "server_login_retry": app.breaker_interval or 1.0, "query_wait_timeout": app.connect,
            "reserve_pool_timeout": app.connect / 2,
            "query_timeout": app.statement + 1 if app.statement else 0}


def derive(view: HostView) -> PgbouncerContext:
    from roles.app import demand  # the app role's package imports this role's variables

    v = view.vars
    address = str(v["private_address"])
    db = view.topology.hosts(Group.DB)[0]
    return PgbouncerContext(
        address=address,
        listen=["127.0.0.1", address],
        port=int(v["pgbouncer_port"]),
        socket_dir=SOCKET_DIR,
        db_name=v["postgresql_db_name"],
        # TLS to PostgreSQL's private address, its certificate verified with the inventory's CA, also from the
        # db host itself: pg_hba's local lines stay peer-only (dev-sec postgres-14), network lines hostssl.
        server_host=str(view.topology.facts(db)[ADDRESS_FACT]),
        server_port=int(v["postgresql_port"]),
        server_tls=True,
        app_user=v["postgresql_app_user"],
        pool_mode=v["pgbouncer_pool_mode"],
        default_pool_size=int(v["pgbouncer_default_pool_size"]),
        reserve_pool_size=int(v["pgbouncer_reserve_pool_size"]),
        max_client_conn=int(v["pgbouncer_max_client_conn"]),
        # A hard cap on what this host may open, whatever the pools: PostgreSQL is sized for exactly this.
        max_db_connections=server_connections(v),
        **failure_timeouts(demand.database_timeouts(view.topology)),
        auth_user=v["pgbouncer_auth_user"],
        auth_password=v["pgbouncer_auth_password"],
        auth_query=f"SELECT usename, passwd FROM {AUTH_FUNCTION}($1)",
        conf_dir=CONF_DIR,
        tls_cert=f"{TLS_DIR}/server.crt",
        tls_key=f"{TLS_DIR}/server.key",
        tls_ca=CA_CERT_PATH,
        tls_cert_src=v["tls_cert_file"],
        tls_key_src=v["tls_key_file"],
    )


def auth_function_sql(app_user: str, pooler_user: str) -> str:
    """The SQL the db host runs in the app's database so that PgBouncer's auth_query works: the lookup function,
    owned by postgres and SECURITY DEFINER, that answers for the runtime role only, and the right to call it.

    Idempotent (CREATE OR REPLACE, IF NOT EXISTS); identifiers are checked by validation (checks.identifier).
    """
    return (f"CREATE SCHEMA IF NOT EXISTS {AUTH_SCHEMA} AUTHORIZATION postgres;\n"
            f"REVOKE ALL ON SCHEMA {AUTH_SCHEMA} FROM PUBLIC;\n"
            f"CREATE OR REPLACE FUNCTION {AUTH_FUNCTION}(p_usename text) RETURNS TABLE(usename name, passwd text)\n"
            "    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS\n"
            "$$ SELECT usename, passwd FROM pg_catalog.pg_shadow\n"
            f"   WHERE usename = p_usename AND usename = '{app_user}' AND NOT usesuper $$;\n"
            f"REVOKE ALL ON FUNCTION {AUTH_FUNCTION}(text) FROM PUBLIC;\n"
            f"GRANT USAGE ON SCHEMA {AUTH_SCHEMA} TO {pooler_user};\n"
            f"GRANT EXECUTE ON FUNCTION {AUTH_FUNCTION}(text) TO {pooler_user};\n")
