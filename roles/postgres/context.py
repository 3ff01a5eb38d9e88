"""The postgres role's context: PGTune's settings sized for the host and the app tier's demand, TLS, logging."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from roles.app import demand
from roles.registry import Group
from tsdeploy import tuning
from tsdeploy.rolespec import Inbound
from tsdeploy.units import parse_size

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

#: Debian release -> the PostgreSQL major version it ships.
POSTGRESQL_VERSIONS = {"bookworm": 15, "trixie": 17}
#: Build options of Debian's postgresql-15 (bookworm) and postgresql-17 (trixie) packages that PGTune cannot
#: see and therefore warns about (`pg_config --configure` on a lab db host lists `--with-lz4`). `tsdeploy tune`
#: keeps PGTune's warning; the deploy, which installs exactly these packages, knows the answer and drops it.
DEBIAN_POSTGRESQL_BUILD_OPTIONS = ("--with-lz4",)

#: True when the running server differs from its files in a way only a restart fixes: pending_restart (set by
#: a reload) or, read from the files as they are now, an entry that "could not be applied". That error also
#: marks an invalid value, so the restart is preceded by a config check (`postgres -C`), like `nginx -t`.
RESTART_NEEDED_SQL = ("SELECT coalesce((SELECT bool_or(pending_restart) FROM pg_settings), false) OR EXISTS "
                   "(SELECT 1 FROM pg_file_settings WHERE error = 'setting could not be applied')")


class Setting(TypedDict):
    name: str
    value: str
    reason: str


class PostgresContext(TypedDict):
    """`ctx["postgres"]` on a db host (other roles read it through `view.service("postgres")`)."""

    host: str
    address: str
    version: int
    port: int
    conf_dir: str
    data_dir: str
    service: str
    db_name: str
    app_user: str
    app_password: str
    connection_limit: int
    max_connections: int
    extensions: list[str]
    settings: list[Setting]
    warnings: list[str]
    hba_app_hosts: list[str]
    tls_cert_src: str
    tls_key_src: str
    restart_needed_sql: str


def _warnings_debian_does_not_answer(warnings: list[str]) -> list[str]:
    """PGTune's warnings minus "requires PostgreSQL to be compiled with X" for the X Debian's packages have.

    >>> _warnings_debian_does_not_answer(["wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4"])
    []
    """
    return [warning for warning in warnings
            if not any(warning.endswith(f"compiled with {option}") for option in DEBIAN_POSTGRESQL_BUILD_OPTIONS)]


def inbound(view: HostView) -> list[Inbound]:
    return [Inbound(int(view.vars["postgresql_port"]), view.addresses(Group.APP), "PostgreSQL from app hosts")]


def derive(view: HostView) -> PostgresContext:
    v = view.vars
    version = POSTGRESQL_VERSIONS[v["debian_release"]]
    memory = parse_size(v["host_memory"])
    topology = demand.connection_demand(view.topology, int(v["postgresql_connection_headroom"]))
    tuned = tuning.tune(memory=memory, cpus=int(v["host_cpus"]), storage=v["postgresql_storage"],
                        profile=v["postgresql_profile"], pg_version=version,
                        connections=topology.max_connections)
    warnings = (_warnings_debian_does_not_answer(tuned.warnings)
                + tuning.demand_warnings(tuning=tuned, memory=memory, topology=topology))
    conf_dir = f"/etc/postgresql/{version}/main"
    address = str(v["private_address"])
    settings = [Setting(name=name, value=setting.value, reason=setting.reason)
                for name, setting in tuned.settings.items()]
    for setting in settings:
        if setting["name"] == "wal_compression" and setting["value"] == "lz4":
            setting["reason"] += "; Debian's package is built --with-lz4"
    settings[0]["reason"] = (f"{topology.app_hosts} app hosts x {topology.workers} workers x (pool "
                             f"{topology.pool_size} + overflow {topology.max_overflow}) + "
                             f"{topology.headroom} headroom")
    threshold = demand.slow_query_threshold(view.topology)
    threshold_ms = int(round(float(threshold) * 1000))
    settings += [
        Setting(name="listen_addresses", value=f"'localhost,{address}'",
                reason="loopback and the private address only, never * (CIS 5.2)"),
        Setting(name="port", value=str(int(v["postgresql_port"])), reason="the port app hosts connect to"),
        Setting(name="password_encryption", value="'scram-sha-256'", reason="SCRAM verifiers only (postgres-07)"),
        Setting(name="ssl", value="on", reason="app hosts connect over hostssl only"),
        Setting(name="ssl_cert_file", value=f"'{conf_dir}/server.crt'",
                reason="the inventory's certificate, signed by its CA (never snakeoil)"),
        Setting(name="ssl_key_file", value=f"'{conf_dir}/server.key'", reason="its key, 0600 postgres"),
        Setting(name="ssl_min_protocol_version", value="'TLSv1.2'", reason="no TLS 1.0/1.1 (CIS 6.8)"),
        Setting(name="shared_preload_libraries", value="'pg_stat_statements'",
                reason="query statistics for the app's monitor (needs a restart to change)"),
        Setting(name="log_connections", value="on", reason="audit trail of logins (CIS 3.1.20)"),
        Setting(name="log_disconnections", value="on", reason="session durations (CIS 3.1.21)"),
        Setting(name="log_line_prefix", value="'%m [%p] db=%d,user=%u,app=%a,client=%h '",
                reason="time, pid, database, user, application and client on every line (CIS 3.1.23)"),
        Setting(name="log_statement", value="'ddl'", reason="schema changes are logged (CIS 3.1.24)"),
        Setting(name="log_min_duration_statement", value=str(threshold_ms),
                reason=f"statements slower than SLOW_QUERY_THRESHOLD ({threshold} s)"),
    ]
    return PostgresContext(
        host=view.name,
        address=address,
        version=version,
        port=int(v["postgresql_port"]),
        conf_dir=conf_dir,
        data_dir=f"/var/lib/postgresql/{version}/main",
        service=f"postgresql@{version}-main",
        db_name=v["postgresql_db_name"],
        app_user=v["postgresql_app_user"],
        app_password=v["postgresql_app_password"],
        connection_limit=topology.demand,
        max_connections=topology.max_connections,
        extensions=list(v["postgresql_extensions"]),
        settings=settings,
        warnings=warnings,
        hba_app_hosts=view.addresses(Group.APP),
        tls_cert_src=v["tls_cert_file"],
        tls_key_src=v["tls_key_file"],
        restart_needed_sql=RESTART_NEEDED_SQL,
    )
