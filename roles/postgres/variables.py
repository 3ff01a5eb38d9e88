"""The postgres role's variables: the database, its app login role, PGTune's inputs, extensions, archiving.

With a backup host in the inventory the db host archives its WAL with pgBackRest: it reads the backup role's
archiving variables (`ARCHIVING_VARIABLES`: stanza, archive timeout, queue limit, TLS port, S3), listed here
so that validation checks them on db hosts too. Its inventory-wide checks refuse what breaks archiving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

from roles.backup.variables import ARCHIVING_VARIABLES
from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from roles.registry import Group

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

POSTGRESQL_PORT = Variable("postgresql_port", 5432, "the port PostgreSQL listens on; nftables opens it to app hosts",
                           checks.integer(1, 65535))
POSTGRESQL_DB_NAME = Variable("postgresql_db_name", "talentsphere",
                              "the app's database, owned by the owner role", checks.identifier)
POSTGRESQL_APP_USER = Variable("postgresql_app_user", "talentsphere",
                               "the app's runtime login role: reads and writes rows (SELECT, INSERT, UPDATE, DELETE, "
                               "sequences), owns nothing, no DDL (connection limit = the app tier's demand)",
                               checks.identifier)
POSTGRESQL_APP_PASSWORD = Variable("postgresql_app_password", REQUIRED,
                                   "its password, from the vault; PostgreSQL only receives a SCRAM verifier",
                                   checks.secret(), secret=True)
#: A second password of the runtime role, for the app only, while `tsdeploy rotate-secrets` switches it.
POSTGRESQL_APP_PASSWORD_FALLBACK = Variable(
    "postgresql_app_password_fallback", "",
    "a second password the app tries when PostgreSQL refuses the first (DATABASE_PASSWORD_FALLBACK), during a "
    "rotation only (`tsdeploy rotate-secrets`), from the vault; PostgreSQL never gets it; empty: none",
    checks.optional_secret, secret=True)
POSTGRESQL_OWNER_USER = Variable("postgresql_owner_user", "talentsphere_owner",
                                 "the login role that owns the database and its objects: only the deploy's "
                                 "migrate, optimize-db and seed use it; must differ from postgresql_app_user",
                                 checks.identifier)
POSTGRESQL_OWNER_PASSWORD = Variable("postgresql_owner_password", REQUIRED,
                                     "its password, from the vault (must differ from postgresql_app_password); "
                                     "on app hosts only in a root-only file the deploy's commands read",
                                     checks.secret(), secret=True)
#: Migrations, optimize-db and seed: one connection each, never two at once from one deploy; the rest is slack.
OWNER_CONNECTION_LIMIT = 5

VARIABLES: tuple[Variable, ...] = (
    POSTGRESQL_PORT,
    POSTGRESQL_DB_NAME,
    POSTGRESQL_APP_USER,
    POSTGRESQL_APP_PASSWORD,
    POSTGRESQL_APP_PASSWORD_FALLBACK,
    POSTGRESQL_OWNER_USER,
    POSTGRESQL_OWNER_PASSWORD,
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
    *ARCHIVING_VARIABLES,
)

#: pgBackRest's version in each Debian release: the db host and the backup host must run the same one (its
#: protocol greeting compares them exactly: "expected value '2.45' for greeting key 'version'").
PGBACKREST_VERSIONS = {"bookworm": "2.45", "trixie": "2.55.1"}


def owner_role_problems(topology: Topology) -> list[str]:
    """The owner role exists so that the app's runtime role cannot change the schema: the two must be two roles
    with two passwords (the same password would let whoever holds the runtime's log in as the owner)."""
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    problems = []
    for host in topology.hosts(Group.DB):
        v = topology.vars_of(host)
        where = {name: origin(topology.inventory, host, name) for name in (
            "postgresql_owner_user", "postgresql_app_user", "postgresql_owner_password", "postgresql_app_password")}
        owner = v.get("postgresql_owner_user", POSTGRESQL_OWNER_USER.default)
        runtime = v.get("postgresql_app_user", POSTGRESQL_APP_USER.default)
        if owner == runtime and passes("postgresql_owner_user", owner):
            problems.append(
                f"{host}: postgresql_owner_user = {owner!r} ({where['postgresql_owner_user']}) is also "
                f"postgresql_app_user ({where['postgresql_app_user']}): the runtime role would own the schema and "
                "could change it; fix: give postgresql_owner_user another name (default talentsphere_owner)")
        password = v.get("postgresql_owner_password")
        if password and password == v.get("postgresql_app_password") and passes("postgresql_owner_password", password):
            problems.append(
                f"{host}: postgresql_owner_password ({where['postgresql_owner_password']}) equals "
                f"postgresql_app_password ({where['postgresql_app_password']}): whoever holds the runtime's password "
                "could log in as the owner; fix: set vault_postgresql_owner_password to its own random value "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return problems


def archiving_profile_problems(topology: Topology) -> list[str]:
    """The desktop profile sets wal_level = minimal, and PostgreSQL refuses archive_mode = on with it.

    With a backup host the cluster must archive its WAL, so a db host on the desktop profile cannot be
    deployed: the start would fail ('WAL archival cannot be enabled when wal_level is "minimal"').
    """
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    backup_hosts = topology.hosts(Group.BACKUP)
    if not backup_hosts:
        return []
    problems = []
    for host in topology.hosts(Group.DB):
        profile = topology.vars_of(host).get("postgresql_profile")
        if profile != "desktop" or not passes("postgresql_profile", profile):
            continue
        problems.append(
            f"{host}: postgresql_profile = 'desktop' ({origin(topology.inventory, host, 'postgresql_profile')}) "
            f"sets wal_level = minimal, which cannot archive WAL, but the inventory's group "
            f"{str(Group.BACKUP)!r} has {', '.join(backup_hosts)}, so backups are on and pgBackRest needs "
            "archive_mode = on with wal_level = replica; fix: set postgresql_profile to web, oltp, dw or mixed, "
            f"or take {', '.join(backup_hosts)} out of the {str(Group.BACKUP)!r} group (no backups)")
    return problems


def archiving_release_problems(topology: Topology) -> list[str]:
    """The db host and the backup host must run the same pgBackRest, hence the same Debian release.

    Versions differ between releases (2.45 on bookworm, 2.55.1 on trixie) and pgBackRest refuses a peer of
    another version; the backup host's restore drill also needs the db host's PostgreSQL major version.
    """
    from tsdeploy.validation import origin, passes  # validation imports the roles: import it when checking

    problems = []
    for backup in topology.hosts(Group.BACKUP):
        backup_release = topology.vars_of(backup).get("debian_release")
        if not passes("debian_release", backup_release):
            continue
        for db in topology.hosts(Group.DB):
            db_release = topology.vars_of(db).get("debian_release")
            if db == backup or db_release == backup_release or not passes("debian_release", db_release):
                continue
            where = {host: origin(topology.inventory, host, "debian_release") for host in (backup, db)}
            problems.append(
                f"{backup}: debian_release = {backup_release!r} ({where[backup]}) differs from db host {db}'s "
                f"debian_release = {db_release!r} ({where[db]}): pgBackRest only talks to the same version "
                f"({PGBACKREST_VERSIONS[backup_release]} on {backup_release}, {PGBACKREST_VERSIONS[db_release]} on "
                f"{db_release}) and the backup host's restore drill runs the db host's PostgreSQL major version; "
                f"fix: set debian_release to the same release on {db} and {backup} (group_vars/all sets it for every "
                "host)")
    return problems
