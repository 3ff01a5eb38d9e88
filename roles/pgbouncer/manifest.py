"""What the pgbouncer role manages on a pooler host: its configuration, the auth_query user's password, its TLS
certificate and key, and Debian's package."""

from __future__ import annotations

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.pgbouncer.context import CONF_DIR, RUN_AS, TLS_DIR

TLS_CERT = ManagedFile("pgbouncer/server.crt", f"{TLS_DIR}/server.crt", RUN_AS, RUN_AS, "644",
                       source=("pgbouncer", "tls_cert_src"), variable="tls_cert_file")
TLS_KEY = ManagedFile("pgbouncer/server.key", f"{TLS_DIR}/server.key", RUN_AS, RUN_AS, "600",
                      source=("pgbouncer", "tls_key_src"), variable="tls_key_file", secret=True)
#: Holds the auth_query user's password (PgBouncer needs it in clear to log in with SCRAM): root-owned,
#: readable by postgres only.
USERLIST = ManagedFile("pgbouncer/userlist.txt.j2", f"{CONF_DIR}/userlist.txt", "root", RUN_AS, "640",
                       template="pgbouncer/userlist.txt.j2", secret=True)
LISTEN = ManagedFile("pgbouncer/listen.ini.j2", f"{CONF_DIR}/listen.ini", "root", RUN_AS, "640",
                     template="pgbouncer/listen.ini.j2")
CONF = ManagedFile("pgbouncer/pgbouncer.ini.j2", f"{CONF_DIR}/pgbouncer.ini", "root", RUN_AS, "640",
                   template="pgbouncer/pgbouncer.ini.j2")
FILES = (TLS_CERT, TLS_KEY, USERLIST, LISTEN, CONF)

PATHS = (
    ManagedPath(CONF_DIR, "root", RUN_AS, "750", why="PgBouncer's configuration: root writes, postgres reads"),
    ManagedPath(TLS_DIR, RUN_AS, RUN_AS, "750", why="its certificate and key: postgres only"),
)

SERVICE = "pgbouncer"


def packages(ctx: Context) -> list[str]:
    return ["pgbouncer"]
