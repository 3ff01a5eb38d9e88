"""Fact-comparing SQL operations run as the postgres superuser over the local socket (peer auth).

SQL that carries a secret is never put on a command line (visible in `ps`): it is uploaded into the deploy
user's 0700 upload dir and fed to psql on stdin, then removed.
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.exceptions import OperationError

from roles.postgres.context import RESTART_NEEDED_SQL as _RESTART_NEEDED
from tsdeploy import scram

PSQL = "runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PsqlQuery(FactBase):
    """The rows of a query run as postgres: list of lines, each `|`-separated; [] when it fails."""

    def command(self, database: str, query: str) -> str:
        return f"{PSQL} -d {database} -c {_shell_quote(query)} 2>/dev/null || true"

    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line.strip()]


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@operation()
def ensure(database: str, check: str, fix: str):
    """Run `fix` in `database` unless `check` (a query returning one boolean) already says `t`.

    + database: where both statements run
    + check: SELECT returning t when the state is already right
    + fix: SQL that makes it right (no secrets here: it appears in the command line)
    """
    rows = host.get_fact(PsqlQuery, database=database, query=check)
    if rows == ["t"]:
        host.noop(f"already true in {database}: {check}")
        return
    yield f"{PSQL} -d {database} -c {_shell_quote(fix)}"


def _secret_sql(sql: str, temp_dir: str) -> list[object]:
    """Commands that run `sql` from an uploaded file (stdin) and remove it: the SQL never hits argv."""
    path = f"{temp_dir}/tsdeploy-{host.name}.sql"
    return [
        FileUploadCommand(io.BytesIO(sql.encode()), path,
                          remote_temp_filename=host.get_temp_filename(path, temp_directory=temp_dir)),
        StringCommand("sh", "-c", _shell_quote(f"{PSQL} -d postgres < {path}; status=$?; rm -f {path}; "
                                               "exit $status")),
    ]


@operation()
def login_role(user: str, password: HiddenValue, connection_limit: int, temp_dir: str):
    """An unprivileged login role with a SCRAM password and a connection limit.

    + user: role name
    + password: plaintext from the vault, wrapped in HiddenValue; PostgreSQL only ever gets a verifier
    + connection_limit: CONNECTION LIMIT of the role
    + temp_dir: the deploy user's 0700 upload dir

    Updates: creates a missing role; revokes SUPERUSER/CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS and fixes
    LOGIN and the limit when they differ; replaces the password only when the stored verifier does not match.
    """
    rows = host.get_fact(PsqlQuery, database="postgres", query=(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin, "
        f"rolconnlimit, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = {_quote_literal(user)}"))
    attributes = f"LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {connection_limit}"
    plain = password.unmask()
    if not rows:
        sql = f"CREATE ROLE {user} {attributes} PASSWORD {_quote_literal(scram.verifier(plain))};\n"
        yield from _secret_sql(sql, temp_dir)
        return
    *flags, limit, stored = rows[0].split("|")
    statements = []
    if flags != ["f", "f", "f", "f", "f", "t"] or int(limit) != connection_limit:
        statements.append(f"ALTER ROLE {user} {attributes};\n")
    if not scram.matches(stored, plain):
        statements.append(f"ALTER ROLE {user} PASSWORD {_quote_literal(scram.verifier(plain))};\n")
    if not statements:
        host.noop(f"role {user} has the wanted attributes, limit and password")
        return
    yield from _secret_sql("".join(statements), temp_dir)


@operation()
def restart_if_settings_need_it(service: str, postgres_bin: str, config_file: str):
    """Restart the cluster when a setting in its configuration files cannot take effect without a restart.

    + service: the cluster's systemd unit (postgresql@15-main)
    + postgres_bin: the server binary (/usr/lib/postgresql/15/bin/postgres), used to check the files first
    + config_file: the cluster's postgresql.conf

    Updates: nothing when every file setting is in effect. `pg_file_settings` parses the files at query time,
    so the answer does not depend on whether a reload has been processed yet. Before restarting, `postgres -C`
    parses the files as a start would: an invalid value fails the deploy and the running server stays up.
    """
    rows = host.get_fact(PsqlQuery, database="postgres", query=_RESTART_NEEDED)
    if rows == ["t"]:
        yield StringCommand("runuser", "-u", "postgres", "--", postgres_bin, "-C", "max_connections",
                            "-c", f"config_file={config_file}", ">", "/dev/null")
        yield StringCommand("systemctl", "restart", service)
    elif rows == ["f"]:
        host.noop("every setting in the configuration files is in effect")
    else:
        raise OperationError(f"could not ask {service} whether a restart is needed (is it running?): {rows}")
