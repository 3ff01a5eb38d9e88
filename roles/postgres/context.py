"""The postgres role's context: PGTune's settings sized for the host and the app tier's demand, TLS, logging,
and WAL archiving with pgBackRest when the inventory has a backup host.

Archiving reads the backup role's variables and the backup group's hosts, never the backup role's context:
the backup role reads this one (the cluster's path, port, version), so the reverse would be a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from roles.app import demand
from roles.backup.context import (CONF_DIR, CONF_PATH, LOG_PATH, SERVER_SERVICE, SOCKET_PATH, SPOOL_PATH, TLS_DIR,
                                  pgbackrest_size)
from roles.backup.variables import S3Repository, s3_repository
from roles.pgbouncer.context import AUTH_FUNCTION, AUTH_SCHEMA, auth_function_sql
from roles.postgres.variables import OWNER_CONNECTION_LIMIT
from roles.registry import Group
from tsdeploy import tuning
from tsdeploy.rolespec import ADDRESS_FACT, Inbound
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


#: pgBackRest on a db host: Debian's package, and the paths and TLS server unit the backup role defines (one
#: place for both hosts; pgBackRest reads /etc/pgbackrest/pgbackrest.conf before Debian's sample).
PGBACKREST_PACKAGE = "pgbackrest"
PGBACKREST_DIR = CONF_DIR
PGBACKREST_CONF = CONF_PATH
PGBACKREST_TLS_DIR = TLS_DIR
PGBACKREST_SPOOL_DIR = SPOOL_PATH
PGBACKREST_LOG_DIR = LOG_PATH
#: Debian's unit of `pgbackrest server` (User=postgres): the TLS server the backup host connects to.
PGBACKREST_SERVICE = SERVER_SERVICE
#: Where Debian's PostgreSQL puts its Unix socket (pgBackRest connects there as postgres).
SOCKET_DIR = SOCKET_PATH


class Setting(TypedDict):
    name: str
    value: str
    reason: str


class Pooler(TypedDict):
    """`ctx["postgres"]["pgbouncer"]`: what the db host does for PgBouncer (None without a pooler host)."""

    auth_user: str
    auth_password: str
    #: Pooler hosts (this one too, when it is one) connect over TLS from these addresses.
    addresses: list[str]
    function_sql: str
    function_check: str
    #: The runtime role's statement_timeout as a role setting (PgBouncer does not pass the app's `options` on).
    timeout_check: str
    timeout_fix: str


def pooler(view: HostView) -> Pooler | None:
    """PgBouncer's needs on this db host, from the pooler hosts' variables (not the pgbouncer role's context,
    which reads this role's variables)."""
    hosts = view.topology.hosts(Group.POOLER)
    if not hosts:
        return None
    v = view.topology.vars_of(hosts[0])
    app_user, auth_user = view.vars["postgresql_app_user"], v["pgbouncer_auth_user"]
    body = auth_function_sql(app_user, auth_user)
    timeout_ms = int(round(demand.statement_timeout(view.topology) * 1000))
    source = body.split("$$")[1]
    check = (f"SELECT coalesce((SELECT p.prosecdef AND p.prosrc = '{source.replace(chr(39), chr(39) * 2)}' "
             "AND p.proacl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) "
             f"AND has_function_privilege('{auth_user}', p.oid, 'EXECUTE') "
             f"AND has_schema_privilege('{auth_user}', n.oid, 'USAGE') "
             "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
             f"WHERE n.nspname = '{AUTH_SCHEMA}' AND p.proname = '{AUTH_FUNCTION.split('.')[1]}'), false)")
    return Pooler(auth_user=auth_user, auth_password=v["pgbouncer_auth_password"],
                  addresses=[view.topology.facts(name)[ADDRESS_FACT] for name in hosts],
                  function_sql=body, function_check=check,
                  timeout_check=(f"SELECT coalesce((SELECT 'statement_timeout={timeout_ms}ms' = ANY(rolconfig) "
                                 f"FROM pg_roles WHERE rolname = '{app_user}'), false)"),
                  timeout_fix=f"ALTER ROLE {app_user} SET statement_timeout = '{timeout_ms}ms'")


class Archiving(TypedDict):
    """`ctx["postgres"]["archiving"]`: how this db host archives its WAL (None without a backup host)."""

    stanza: str
    #: The backup host (its inventory name is the CN of its certificate) and its private address.
    repo_host: str
    repo_address: str
    #: This db host is the backup host too: the backup role writes the one local pgbackrest.conf, no TLS server.
    local: bool
    archive_timeout: int
    archive_command: str
    conf_path: str
    #: Where the inventory's CA and this host's certificate and key go (`tls_ca_src`, `tls_cert_src` and
    #: `tls_key_src` of the context): pgBackRest's TLS server and client use them, mutually authenticated.
    tls_dir: str
    tls_port: int
    #: tls-server-auth: the client certificate CN allowed in, and the stanza it may use.
    tls_server_auth: str
    queue_max: str
    process_max: int
    compress_type: str
    spool_path: str
    log_path: str
    socket_path: str
    service: str
    s3: S3Repository | None


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
    app_password_fallback: str
    owner_user: str
    owner_password: str
    owner_connection_limit: int
    connection_limit: int
    max_connections: int
    extensions: list[str]
    settings: list[Setting]
    warnings: list[str]
    hba_app_hosts: list[str]
    tls_ca_src: str
    tls_cert_src: str
    tls_key_src: str
    restart_needed_sql: str
    archiving: Archiving | None
    pgbouncer: Pooler | None


def _warnings_debian_does_not_answer(warnings: list[str]) -> list[str]:
    """PGTune's warnings minus "requires PostgreSQL to be compiled with X" for the X Debian's packages have.

    >>> _warnings_debian_does_not_answer(["wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4"])
    []
    """
    return [warning for warning in warnings
            if not any(warning.endswith(f"compiled with {option}") for option in DEBIAN_POSTGRESQL_BUILD_OPTIONS)]


def archiving(view: HostView) -> Archiving | None:
    """How this db host archives its WAL to the inventory's backup host; None when it has none (no backups).

    Read from the backup role's variables and the backup group's first host, never from the backup role's
    context (which reads this role's). What both sides must agree on (the stanza, the TLS port, the S3
    repository) comes from the backup host's variables, so a value set only in its host vars still matches;
    what only the db host uses (archive timeout, queue limit, processes, compression) from this host's.
    """
    backup_hosts = view.topology.hosts(Group.BACKUP)
    if not backup_hosts:
        return None
    v = view.vars
    repo_host = backup_hosts[0]
    repo = view.topology.vars_of(repo_host)
    stanza = str(repo["backup_stanza"])
    return Archiving(
        stanza=stanza,
        repo_host=repo_host,
        repo_address=view.topology.facts(repo_host)[ADDRESS_FACT],
        local=repo_host == view.name,
        archive_timeout=int(v["backup_archive_timeout"]),
        archive_command=f"pgbackrest --stanza={stanza} archive-push %p",
        conf_path=PGBACKREST_CONF,
        tls_dir=PGBACKREST_TLS_DIR,
        tls_port=int(repo["backup_tls_port"]),
        tls_server_auth=f"{repo_host}={stanza}",
        queue_max=pgbackrest_size(v["backup_archive_queue_max"]),
        process_max=int(v["backup_process_max"]),
        compress_type=str(v["backup_compress_type"]),
        spool_path=PGBACKREST_SPOOL_DIR,
        log_path=PGBACKREST_LOG_DIR,
        socket_path=SOCKET_DIR,
        service=PGBACKREST_SERVICE,
        s3=s3_repository(repo),
    )


def _archiving_settings(archive: Archiving) -> list[Setting]:
    """The settings that make PostgreSQL hand every WAL segment to pgBackRest."""
    where = f"backups on {archive['repo_host']}" + (" (this host)" if archive["local"] else "")
    timeout = archive["archive_timeout"]
    return [
        Setting(name="wal_level", value="replica",
                reason=f"{where}: WAL detailed enough to archive and restore (minimal cannot be archived)"),
        Setting(name="archive_mode", value="on",
                reason=f"{where}: every completed WAL segment goes to pgBackRest (read at server start)"),
        Setting(name="archive_command", value=f"'{archive['archive_command']}'",
                reason=f"{where}: pgBackRest queues the segment in {archive['spool_path']} and pushes it to the "
                       f"stanza {archive['stanza']}'s repositories"),
        Setting(name="archive_timeout", value=f"{timeout}s",
                reason=f"a WAL segment with writes is archived within {timeout} s (backup_archive_timeout): the "
                       "writes a lost db host can take with it"),
    ]


def _with_settings(settings: list[Setting], extra: list[Setting]) -> list[Setting]:
    """`settings` with `extra` appended; an earlier setting of the same name (tuning's) gives way to it."""
    names = {setting["name"] for setting in extra}
    return [setting for setting in settings if setting["name"] not in names] + extra


def inbound(view: HostView) -> list[Inbound]:
    rules = [Inbound(int(view.vars["postgresql_port"]), view.addresses(Group.APP), "PostgreSQL from app hosts")]
    poolers = [address for name, address in zip(view.topology.hosts(Group.POOLER), view.addresses(Group.POOLER))
               if name != view.name]
    if poolers:
        rules.append(Inbound(int(view.vars["postgresql_port"]), poolers, "PostgreSQL from pooler hosts"))
    archive = archiving(view)
    if archive is not None and not archive["local"]:
        rules.append(Inbound(archive["tls_port"], view.addresses(Group.BACKUP),
                             "pgBackRest's TLS server from the backup host (backups, stanza checks)"))
    return rules


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
    settings[0]["reason"] = topology.explain()
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
        Setting(name="log_lock_waits", value="on",
                reason="a wait for a lock longer than deadlock_timeout (1 s) is logged, with who holds it"),
    ]
    archive = archiving(view)
    if archive is not None:
        settings = _with_settings(settings, _archiving_settings(archive))
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
        app_password_fallback=v["postgresql_app_password_fallback"],
        owner_user=v["postgresql_owner_user"],
        owner_password=v["postgresql_owner_password"],
        owner_connection_limit=OWNER_CONNECTION_LIMIT,
        connection_limit=topology.demand,
        max_connections=topology.max_connections,
        extensions=list(v["postgresql_extensions"]),
        settings=settings,
        warnings=warnings,
        hba_app_hosts=view.addresses(Group.APP),
        tls_ca_src=v["tls_ca_cert_file"],
        tls_cert_src=v["tls_cert_file"],
        tls_key_src=v["tls_key_file"],
        restart_needed_sql=RESTART_NEEDED_SQL,
        archiving=archive,
        pgbouncer=pooler(view),
    )
