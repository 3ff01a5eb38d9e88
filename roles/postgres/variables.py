"""The postgres role's variables: the database, its app login role, PGTune's inputs, extensions."""

from __future__ import annotations

from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE

POSTGRESQL_PORT = Variable("postgresql_port", 5432, "the port PostgreSQL listens on; nftables opens it to app hosts",
                           checks.integer(1, 65535))
POSTGRESQL_DB_NAME = Variable("postgresql_db_name", "talentsphere", "the app's database, owned by the app role",
                              checks.identifier)
POSTGRESQL_APP_USER = Variable("postgresql_app_user", "talentsphere",
                               "the app's unprivileged login role (connection limit = the app tier's demand)",
                               checks.identifier)
POSTGRESQL_APP_PASSWORD = Variable("postgresql_app_password", REQUIRED,
                                   "its password, from the vault; PostgreSQL only receives a SCRAM verifier",
                                   checks.secret(16), secret=True)

VARIABLES: tuple[Variable, ...] = (
    POSTGRESQL_PORT,
    POSTGRESQL_DB_NAME,
    POSTGRESQL_APP_USER,
    POSTGRESQL_APP_PASSWORD,
    Variable("postgresql_profile", "web", "PGTune's DB type: web, oltp, dw, desktop or mixed",
             checks.choice("web", "oltp", "dw", "desktop", "mixed")),
    Variable("postgresql_storage", "ssd", "PGTune's storage type: ssd, hdd, san or nvme",
             checks.choice("ssd", "hdd", "san", "nvme")),
    Variable("postgresql_connection_headroom", 10,
             "connections kept free beyond the app's demand: superuser, monitoring, migrations, manual psql",
             checks.integer(0, 10000)),
    Variable("postgresql_extensions", ["pg_trgm", "pg_stat_statements"],
             "extensions the app needs, created by the superuser before migrations"),
    TLS_CA_CERT_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    Variable("postgres_restart", "defer",
             "a setting that needs a restart: defer (warn, record it as pending) or allow (restart the cluster)",
             checks.choice("defer", "allow")),
)
