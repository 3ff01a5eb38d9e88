"""What the postgres role manages on a db host: TLS files, the settings drop-in, pg_hba, modes, packages."""

from __future__ import annotations

from collections.abc import Callable

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath


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
FILES = (SERVER_CERT, SERVER_KEY, SETTINGS, PG_HBA)

CONF_DIR = ManagedPath(lambda ctx: ctx["postgres"]["conf_dir"], "postgres", "postgres", "700",
                       why="the cluster's config dir, postgres-only")
MAIN_CONF = ManagedPath(_conf("postgresql.conf"), "postgres", "postgres", "640", directory=False,
                        why="Debian's postgresql.conf, not world-readable")
DATA_DIR = ManagedPath(lambda ctx: ctx["postgres"]["data_dir"], "postgres", "postgres", "700",
                       why="the data dir, postgres-only")
PATHS = (CONF_DIR, MAIN_CONF, DATA_DIR)


def packages(ctx: Context) -> list[str]:
    return [f"postgresql-{ctx['postgres']['version']}", "postgresql-client-common"]
