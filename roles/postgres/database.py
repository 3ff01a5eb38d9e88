"""The app's role, database, schema privileges and extensions."""

from __future__ import annotations

from pyinfra.api import HiddenValue

from roles.common.files import private_temp_dir
from roles.postgres import sql
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    user, db = pg["app_user"], pg["db_name"]
    sql.login_role(name=f"Keep the app role {user} unprivileged, limited to {pg['connection_limit']} "
                        "connections, with the vault's password",
                   user=user, password=HiddenValue(pg["app_password"]), connection_limit=pg["connection_limit"],
                   temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))
    sql.ensure(name=f"Create the database {db} owned by {user}", database="postgres",
               check=f"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{db}')",
               fix=f"CREATE DATABASE {db} OWNER {user}")
    sql.ensure(name=f"Revoke CREATE on schema public from PUBLIC in {db} (CIS 4.10)", database=db,
               check="SELECT NOT has_schema_privilege('public', 'public', 'CREATE')",
               fix="REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    for extension in pg["extensions"]:
        sql.ensure(name=f"Create the {extension} extension in {db} as the superuser", database=db,
                   check=f"SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = '{extension}')",
                   fix=f"CREATE EXTENSION IF NOT EXISTS {extension}")
