"""What the postgres role manages on a db host: TLS files, the settings drop-in, pg_hba, modes, packages, and
with a backup host pgBackRest's db-side configuration, TLS files and directories."""

from __future__ import annotations

from collections.abc import Callable

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.postgres.context import (PGBACKREST_CONF, PGBACKREST_DIR, PGBACKREST_LOG_DIR, PGBACKREST_PACKAGE,
                                    PGBACKREST_SPOOL_DIR, PGBACKREST_TLS_DIR)


def _conf(name: str) -> Callable[[Context], str]:
    return lambda ctx: f"{ctx['postgres']['conf_dir']}/{name}"


SERVER_CERT = ManagedFile("postgres/server.crt", _conf("server.crt"), "postgres", "postgres", "644",
                          source=("postgres", "tls_cert_src"), variable="tls_cert_file")
SERVER_KEY = ManagedFile("postgres/server.key", _conf("server.key"), "postgres", "postgres", "600",
                         source=("postgres", "tls_key_src"), variable="tls_key_file", secret=True)
SETTINGS = ManagedFile("postgres/tsdeploy.conf.j2", _conf("conf.d/50-tsdeploy.conf"), "postgres", "postgres", "640",
                       template="postgres/tsdeploy.conf.j2")
PG_HBA = ManagedFile("postgres/pg_hba.conf.j2", _conf("pg_hba.conf"), "postgres", "postgres", "600",
                     template="postgres/pg_hba.conf.j2")


def remote_repository(ctx: Context) -> bool:
    """Whether this db host archives to a repository on another host (split): then it runs pgBackRest's TLS
    server with its own configuration. Without a backup host there is nothing to archive to; on the backup
    host itself (single) the backup role writes the one local configuration."""
    archive = ctx["postgres"]["archiving"]
    return archive is not None and not archive["local"]


def _tls(name: str) -> str:
    return f"{PGBACKREST_TLS_DIR}/{name}"


#: Holds the S3 repository's keys and passphrase when there is one: root-owned, read by postgres only.
PGBACKREST = ManagedFile("postgres/pgbackrest.conf.j2", PGBACKREST_CONF, "root", "postgres", "640",
                         template="postgres/pgbackrest.conf.j2", secret=True, when=remote_repository,
                         trigger="pgbackrest")
PGBACKREST_CA = ManagedFile("postgres/pgbackrest-ca.crt", _tls("ca.crt"), "postgres", "postgres", "644",
                            source=("postgres", "tls_ca_src"), variable="tls_ca_cert_file",
                            when=remote_repository, trigger="pgbackrest")
PGBACKREST_CERT = ManagedFile("postgres/pgbackrest-host.crt", _tls("host.crt"), "postgres", "postgres", "644",
                              source=("postgres", "tls_cert_src"), variable="tls_cert_file",
                              when=remote_repository, trigger="pgbackrest")
PGBACKREST_KEY = ManagedFile("postgres/pgbackrest-host.key", _tls("host.key"), "postgres", "postgres", "600",
                             source=("postgres", "tls_key_src"), variable="tls_key_file", secret=True,
                             when=remote_repository, trigger="pgbackrest")
def _archiving(ctx: Context) -> bool:
    return ctx["postgres"]["archiving"] is not None


WAL_SWITCH_SERVICE = ManagedFile("postgres/wal-switch.service.j2", "/etc/systemd/system/tsdeploy-wal-switch.service",
                                 "root", "root", "644", template="postgres/wal-switch.service.j2", when=_archiving,
                                 trigger="wal-switch")
WAL_SWITCH_TIMER = ManagedFile("postgres/wal-switch.timer.j2", "/etc/systemd/system/tsdeploy-wal-switch.timer",
                               "root", "root", "644", template="postgres/wal-switch.timer.j2", when=_archiving,
                               trigger="wal-switch")
WAL_SWITCH_UNITS = (WAL_SWITCH_SERVICE, WAL_SWITCH_TIMER)
WAL_SWITCH = "tsdeploy-wal-switch.timer"

#: pgBackRest's db-side files, checked together before they land (see archiving.py).
PGBACKREST_FILES = (PGBACKREST, PGBACKREST_CA, PGBACKREST_CERT, PGBACKREST_KEY)

FILES = (SERVER_CERT, SERVER_KEY, SETTINGS, PG_HBA, *PGBACKREST_FILES, *WAL_SWITCH_UNITS)

CONF_DIR = ManagedPath(lambda ctx: ctx["postgres"]["conf_dir"], "postgres", "postgres", "700",
                       why="the cluster's config dir, postgres-only")
MAIN_CONF = ManagedPath(_conf("postgresql.conf"), "postgres", "postgres", "640", directory=False,
                        why="Debian's postgresql.conf, not world-readable")
DATA_DIR = ManagedPath(lambda ctx: ctx["postgres"]["data_dir"], "postgres", "postgres", "700",
                       why="the data dir, postgres-only")
CLUSTER_PATHS = (CONF_DIR, MAIN_CONF, DATA_DIR)

PGBACKREST_CONF_DIR = ManagedPath(PGBACKREST_DIR, "root", "postgres", "750",
                                  why="pgBackRest's configuration, root-owned, read by postgres only",
                                  when=lambda ctx: remote_repository(ctx))
PGBACKREST_TLS = ManagedPath(PGBACKREST_TLS_DIR, "postgres", "postgres", "750",
                             why="the TLS files of pgBackRest's server, postgres-only",
                             when=lambda ctx: remote_repository(ctx))
PGBACKREST_SPOOL = ManagedPath(PGBACKREST_SPOOL_DIR, "postgres", "postgres", "750",
                               why="the asynchronous archive queue of WAL waiting for the repository",
                               when=lambda ctx: remote_repository(ctx))
PGBACKREST_LOG = ManagedPath(PGBACKREST_LOG_DIR, "postgres", "postgres", "750", why="pgBackRest's log files",
                             when=lambda ctx: remote_repository(ctx))
#: Only when the repository is on another host; on a db host that is also the backup host the backup role
#: manages them.
PGBACKREST_PATHS = (PGBACKREST_CONF_DIR, PGBACKREST_TLS, PGBACKREST_SPOOL, PGBACKREST_LOG)

PATHS = (*CLUSTER_PATHS, *PGBACKREST_PATHS)


def packages(ctx: Context) -> list[str]:
    names = [f"postgresql-{ctx['postgres']['version']}", "postgresql-client-common"]
    if ctx["postgres"]["archiving"] is not None:
        # archive_command runs pgbackrest, also when the backup role configures it on this same host.
        names.append(PGBACKREST_PACKAGE)
    return names
