"""The database's two login roles (owner and runtime), the database, schema privileges and extensions.

The owner role owns the database and every object in it: the deploy's migrations, optimize-db and seed run as
it. The app runs as the runtime role, which owns nothing and holds only DML on the tables and use of the
sequences, so neither a bug nor an injection in the app can change the schema. A database deployed before the
split (the runtime role owned it) is handed over once by `sql.split_fix`.
"""

from __future__ import annotations

from pyinfra.api import HiddenValue

from roles.common.files import private_temp_dir
from roles.postgres import sql
from tsdeploy.rolespec import Context

#: PgBouncer's lookup role opens one connection per pooler host at a time (its auth_query), a few at most.
POOLER_CONNECTION_LIMIT = 5


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    user, owner, db = pg["app_user"], pg["owner_user"], pg["db_name"]
    temp_dir = private_temp_dir(ctx["host"]["deploy_user"])
    sql.login_role(name=f"Keep the owner role {owner} unprivileged beyond its database, limited to "
                        f"{pg['owner_connection_limit']} connections, with the vault's password",
                   user=owner, password=HiddenValue(pg["owner_password"]),
                   connection_limit=pg["owner_connection_limit"], temp_dir=temp_dir)
    sql.login_role(name=f"Keep the app's runtime role {user} unprivileged, limited to {pg['connection_limit']} "
                        "connections, with the vault's password",
                   user=user, password=HiddenValue(pg["app_password"]), connection_limit=pg["connection_limit"],
                   temp_dir=temp_dir)
    sql.ensure(name=f"Create the database {db} owned by {owner}", database="postgres",
               check=f"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{db}')",
               fix=f"CREATE DATABASE {db} OWNER {owner}")
    sql.ensure(name=f"Revoke CREATE on schema public from PUBLIC in {db} (CIS 4.10)", database=db,
               check="SELECT NOT has_schema_privilege('public', 'public', 'CREATE')",
               fix="REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    sql.ensure(name=f"{owner} owns {db} and its objects; {user} owns nothing and holds only "
                    f"{', '.join(sql.RUNTIME_TABLE_PRIVILEGES)} on its tables (also on those migrations add)",
               database=db, check=sql.split_check(owner, user), fix=sql.split_fix(db, owner, user))
    pooler = pg["pgbouncer"]
    if pooler is not None:
        auth = pooler["auth_user"]
        sql.login_role(name=f"Keep PgBouncer's lookup role {auth} unprivileged, limited to {POOLER_CONNECTION_LIMIT} "
                            "connections, with the vault's password",
                       user=auth, password=HiddenValue(pooler["auth_password"]),
                       connection_limit=POOLER_CONNECTION_LIMIT, temp_dir=temp_dir)
        sql.ensure(name=f"Create PgBouncer's lookup function in {db}: SECURITY DEFINER, the runtime role's "
                        f"verifier only, callable by {auth} only", database=db, check=pooler["function_check"],
                   fix=pooler["function_sql"])
        sql.ensure(name=f"Give {user} the app's statement timeout as a role setting (PgBouncer does not pass on "
                        "the app's own)", database=db, check=pooler["timeout_check"], fix=pooler["timeout_fix"])
    for extension in pg["extensions"]:
        sql.ensure(name=f"Create the {extension} extension in {db} as the superuser", database=db,
                   check=f"SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = '{extension}')",
                   fix=f"CREATE EXTENSION IF NOT EXISTS {extension}")
