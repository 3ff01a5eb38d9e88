"""The pgbouncer role's variables: its port, pool mode and sizes, and the password of its auth_query user.

The postgres role reads pgbouncer_auth_user and pgbouncer_auth_password from a pooler host's variables: the db host
creates that login role and the function PgBouncer reads verifiers through.
"""

from __future__ import annotations

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from roles.postgres.variables import (POSTGRESQL_APP_USER, POSTGRESQL_DB_NAME, POSTGRESQL_OWNER_USER,
                                      POSTGRESQL_PORT)
from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

#: The login role PgBouncer's auth_query runs as (it may only call the lookup function, nothing else).
PGBOUNCER_AUTH_USER = Variable("pgbouncer_auth_user", "pgbouncer",
                               "the login role PgBouncer looks up the app role's SCRAM verifier as",
                               checks.identifier)
PGBOUNCER_AUTH_PASSWORD = Variable("pgbouncer_auth_password", REQUIRED, "its password, from the vault",
                                   checks.secret(), secret=True)

VARIABLES: tuple[Variable, ...] = (
    Variable("pgbouncer_port", 6432, "the port PgBouncer serves on (TLS required); nftables opens it to app hosts",
             checks.integer(1, 65535)),
    # Transaction pooling: a server connection serves any client between transactions, which is what makes
    # max_connections independent of app hosts x workers. The app keeps no session state (its one lock is
    # pg_try_advisory_xact_lock, transaction-scoped).
    Variable("pgbouncer_pool_mode", "transaction", "transaction (the app's) or session",
             checks.choice("transaction", "session")),
    Variable("pgbouncer_default_pool_size", 20,
             "server connections per pooler host for the app's role and database", checks.integer(1, 1000)),
    Variable("pgbouncer_reserve_pool_size", 5,
             "extra server connections a pool may open when a client waited half the app's connect timeout",
             checks.integer(0, 1000)),
    Variable("pgbouncer_max_client_conn", 2000, "client connections PgBouncer accepts", checks.integer(1, 100000)),
    PGBOUNCER_AUTH_USER,
    PGBOUNCER_AUTH_PASSWORD,
    POSTGRESQL_PORT, POSTGRESQL_DB_NAME, POSTGRESQL_APP_USER, POSTGRESQL_OWNER_USER,
    # PgBouncer serves TLS with the host's certificate and verifies PostgreSQL's with the CA.
    TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
)
