"""Fact-comparing SQL operations run as the postgres superuser over the local socket (peer auth).

SQL that carries a secret is never put on a command line (visible in `ps`): it is uploaded into the deploy
user's 0700 upload dir and fed to psql on stdin, then removed. No fact reads a secret back either: pyinfra
prints a fact's command with -vv and its output with -vvv, so the app role's stored SCRAM verifier is compared
through its SHA-256 (`role_query`, `password_matches`), never read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.exceptions import OperationError

from roles.common import restarts
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


#: A role's attributes as `login_role` wants them (its connection limit is appended).
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT"


def role_query(user: str) -> str:
    """The query of `login_role`'s fact: one row `flags|limit|iterations:salt|sha256` for `user`, none if absent.

    Of the stored password it reads only the SCRAM parameters (iterations and salt, which the server sends to
    any client that starts a login) and the SHA-256 of the stored verifier, never the verifier itself: pyinfra
    prints a fact's output with -vvv, and a verifier lets whoever holds it pose as the server to the app.
    """
    return ("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin, rolconnlimit, "
            "coalesce(split_part(rolpassword, '$', 2), ''), "
            "coalesce(encode(sha256(convert_to(rolpassword, 'UTF8')), 'hex'), '') "
            f"FROM pg_authid WHERE rolname = {_quote_literal(user)}")


def password_matches(parameters: str, digest: str, password: str) -> bool:
    """Whether the stored verifier, seen as its `iterations:salt` and its SHA-256 (`role_query`), is one of
    `password`: recompute the verifier with that salt and count and compare the digests (an md5 or missing
    password has no parameters and never matches)."""
    try:
        iterations, salt = parameters.split(":", 1)
        expected = scram.verifier(password, base64.b64decode(salt, validate=True), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.sha256(expected.encode()).hexdigest(), digest)


def role_statements(user: str, connection_limit: int, row: str | None, password: str) -> list[str]:
    """The SQL that makes `user` as `login_role` wants it, from the fact's row (None: no such role); [] = as wanted.

    The password reaches PostgreSQL only as a new SCRAM verifier, in these statements, which are uploaded as a
    file and never logged (`_secret_sql`).
    """
    attributes = f"{ROLE_ATTRIBUTES} {connection_limit}"
    if row is None:
        return [f"CREATE ROLE {user} {attributes} PASSWORD {_quote_literal(scram.verifier(password))};\n"]
    *flags, limit, parameters, digest = row.split("|")
    statements = []
    if flags != ["f", "f", "f", "f", "f", "t"] or int(limit) != connection_limit:
        statements.append(f"ALTER ROLE {user} {attributes};\n")
    if not password_matches(parameters, digest, password):
        statements.append(f"ALTER ROLE {user} PASSWORD {_quote_literal(scram.verifier(password))};\n")
    return statements


@operation()
def login_role(user: str, password: HiddenValue, connection_limit: int, temp_dir: str):
    """An unprivileged login role with a SCRAM password and a connection limit.

    + user: role name
    + password: plaintext from the vault, wrapped in HiddenValue; PostgreSQL only ever gets a verifier
    + connection_limit: CONNECTION LIMIT of the role
    + temp_dir: the deploy user's 0700 upload dir

    Updates: creates a missing role; revokes SUPERUSER/CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS and fixes
    LOGIN and the limit when they differ; replaces the password only when the stored verifier does not match
    (compared by digest: neither the fact's output nor any command holds the verifier).
    """
    rows = host.get_fact(PsqlQuery, database="postgres", query=role_query(user))
    statements = role_statements(user, connection_limit, rows[0] if rows else None, password.unmask())
    if not statements:
        host.noop(f"role {user} has the wanted attributes, limit and password")
        return
    yield from _secret_sql("".join(statements), temp_dir)


#: What the runtime role may do to every table and sequence of the app's schema (and nothing else there).
RUNTIME_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
RUNTIME_SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")


def _app_relations(schema_literal: str) -> str:
    """The condition on pg_class `c` for the app's tables and sequences in the schema: not the members of an
    extension (pg_stat_statements' views belong to the superuser and get only what the extension grants)."""
    return (f"c.relnamespace = {schema_literal}::regnamespace AND c.relkind IN ('r', 'p', 'S') "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "AND d.objid = c.oid AND d.deptype = 'e')")


def split_check(owner: str, runtime: str, schema: str = "public") -> str:
    """A query, run in the app's database, that is true when ownership and privileges are split as wanted:

    the owner role owns the database and the runtime role owns nothing in it nor any shared object
    (pg_shdepend's ownership entries); the runtime role can create neither in the database nor in the schema;
    it holds each of RUNTIME_TABLE_PRIVILEGES on every table and RUNTIME_SEQUENCE_PRIVILEGES on every sequence
    of the schema; and the owner's default privileges grant the same on what it creates later (each
    migration's tables).
    """
    o, r, n = _quote_literal(owner), _quote_literal(runtime), _quote_literal(schema)
    tables = " AND ".join(f"has_table_privilege({r}, c.oid, '{p}')" for p in RUNTIME_TABLE_PRIVILEGES)
    # CASE: PostgreSQL may evaluate the privilege function before the relkind test, and has_sequence_privilege
    # raises an error on anything that is not a sequence.
    sequences = " AND ".join(f"has_sequence_privilege({r}, c.oid, '{p}')" for p in RUNTIME_SEQUENCE_PRIVILEGES)

    def defaults(kind: str, privileges: tuple[str, ...]) -> str:
        wanted = ", ".join(_quote_literal(p) for p in privileges)
        return (f"(SELECT count(DISTINCT x.privilege_type) FROM pg_default_acl a, aclexplode(a.defaclacl) x "
                f"WHERE a.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = {o}) "
                f"AND a.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = {n}) "
                f"AND a.defaclobjtype = '{kind}' AND x.grantee = (SELECT oid FROM pg_roles WHERE rolname = {r}) "
                f"AND x.privilege_type IN ({wanted})) = {len(privileges)}")

    return (
        f"SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) = {o} "
        f"AND NOT EXISTS (SELECT 1 FROM pg_shdepend WHERE deptype = 'o' "
        f"AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = {r}) "
        f"AND dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))) "
        f"AND NOT has_database_privilege({r}, current_database(), 'CREATE') "
        f"AND NOT has_schema_privilege({r}, {n}, 'CREATE') "
        f"AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE {_app_relations(n)} "
        f"AND CASE WHEN c.relkind = 'S' THEN NOT ({sequences}) ELSE NOT ({tables}) END) "
        f"AND {defaults('r', RUNTIME_TABLE_PRIVILEGES)} AND {defaults('S', RUNTIME_SEQUENCE_PRIVILEGES)}")


def split_fix(database: str, owner: str, runtime: str, schema: str = "public") -> str:
    """The statements (one transaction: psql -c sends them as one query) that make `split_check` true.

    REASSIGN OWNED moves what the runtime role owned (a database deployed before the split: the database, its
    tables, indexes and sequences) to the owner, and the grants follow in the same transaction, so the running
    app never sees its tables without its privileges. Everything here is idempotent.
    """
    tables, sequences = ", ".join(RUNTIME_TABLE_PRIVILEGES), ", ".join(RUNTIME_SEQUENCE_PRIVILEGES)
    return (f"ALTER DATABASE {database} OWNER TO {owner}; "
            f"REASSIGN OWNED BY {runtime} TO {owner}; "
            f"REVOKE CREATE ON DATABASE {database} FROM {runtime}; "
            f"REVOKE CREATE ON SCHEMA {schema} FROM {runtime}; "
            f"GRANT USAGE ON SCHEMA {schema} TO {runtime}; "
            # Per relation, not ON ALL TABLES: an extension's views would get the app's DML grants too.
            f"DO $tsdeploy$ DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM "
            f"pg_class c WHERE {_app_relations(_quote_literal(schema))} LOOP "
            f"IF r.relkind = 'S' THEN EXECUTE format('GRANT {sequences} ON SEQUENCE %s TO {runtime}', r.name); "
            f"ELSE EXECUTE format('GRANT {tables} ON TABLE %s TO {runtime}', r.name); END IF; "
            f"END LOOP; END $tsdeploy$; "
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {tables} ON TABLES TO {runtime}; "
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} GRANT {sequences} ON SEQUENCES "
            f"TO {runtime}")


#: The settings the running server applies only at a restart, with their running and new values: those with
#: `pending_restart` (set by the reload) and, read from the files as they are now (so no timing decides it),
#: postmaster-context entries of pg_file_settings that "could not be applied". One row per setting:
#: name|running value|value in the files.
PENDING_RESTART_SQL = (
    "SELECT s.name, current_setting(s.name), coalesce((SELECT f.setting FROM pg_file_settings f "
    "WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), '?') FROM pg_settings s WHERE s.pending_restart "
    "OR (s.context = 'postmaster' AND EXISTS (SELECT 1 FROM pg_file_settings f WHERE f.name = s.name "
    "AND f.error = 'setting could not be applied')) ORDER BY s.name")
#: The service's name in the pending-restart marker and in `PendingRestarts`, and the role that restarts it.
MARKER_SERVICE, ROLE_NAME = "postgresql", "postgres"
#: After a restart: how long to wait for the server to answer, then nothing may be pending.
RESTART_VERIFY_SECONDS = 60


class PendingRestartSettings(FactBase):
    """Settings waiting for a restart: [(name, running value, new value)]; None when the server cannot be asked."""

    def command(self) -> str:
        return (f"{PSQL} -F '|' -d postgres -c {_shell_quote(PENDING_RESTART_SQL)} 2>/dev/null "
                "&& echo tsdeploy-ok || true")

    def process(self, output: list[str]) -> list[tuple[str, str, str]] | None:
        lines = [line for line in output if line.strip()]
        if not lines or lines[-1].strip() != "tsdeploy-ok":
            return None
        rows = []
        for line in lines[:-1]:
            name, _, rest = line.partition("|")
            running, _, new = rest.partition("|")
            rows.append((name, running, new))
        return rows

    def default(self) -> None:
        return None


def pending_lines(rows: list[tuple[str, str, str]], reasons: dict[str, str] | None = None) -> list[str]:
    """One line per setting: `name: running -> new (why)`, with the deploy's reason for the value when known.

    >>> pending_lines([("shared_buffers", "128MB", "256MB")])
    ['shared_buffers: 128MB -> 256MB (needs a restart)']
    """
    reasons = reasons or {}
    return [f"{name}: {running} -> {new} (needs a restart"
            + (f"; {reasons[name]})" if reasons.get(name) else ")") for name, running, new in rows]


def _verify_nothing_pending(service: str) -> StringCommand:
    count = f"{PSQL} -d postgres -c 'SELECT count(*) FROM pg_settings WHERE pending_restart'"
    script = (f"for _ in $(seq {RESTART_VERIFY_SECONDS * 2}); do n=$({count} 2>/dev/null) && break; sleep 0.5; "
              f"done; [ \"$n\" = 0 ] && exit 0; echo \"{service} still has settings pending a restart after it: "
              "$n\" >&2; exit 1")
    return StringCommand("sh", "-c", _shell_quote(script))


@operation()
def restart_if_settings_need_it(service: str, postgres_bin: str, config_file: str, allowed: bool,
                                reasons: dict[str, str] | None = None):
    """Restart the cluster when a setting in its files needs it and a restart is allowed; else record it.

    + service: the cluster's systemd unit (postgresql@15-main)
    + postgres_bin: the server binary (/usr/lib/postgresql/15/bin/postgres), used to check the files first
    + config_file: the cluster's postgresql.conf
    + allowed: `roles.common.restarts.allowed("postgres", postgres_restart)`: TSDEPLOY_ALLOW_RESTART or policy
    + reasons: setting name -> why the deploy wants its value (named in the warning and the marker)

    Asks PostgreSQL after the reload which settings have `pending_restart` (or could not be applied from the
    files as they are now), with their running and new values. Nothing pending: no change (a stale marker,
    left by a restart made outside the deploy, is removed). Pending and allowed: `postgres -C` parses the files
    as a start would (an invalid value fails the deploy; the running server stays up), restart, then nothing
    may be pending; the marker is removed. Pending and not allowed: a warning names the settings and the
    marker /var/lib/tsdeploy/pending-restart/postgresql records them (root 0644); the operation succeeds, and
    a next deploy with the same settings pending reports no change (the marker is compared first).
    """
    rows = host.get_fact(PendingRestartSettings)
    if rows is None:
        raise OperationError(f"could not ask {service} which settings need a restart (is it running?)")
    current = host.get_fact(restarts.Marker, service=MARKER_SERVICE)
    if not rows:
        if current is not None:
            yield restarts.clear(MARKER_SERVICE)
        else:
            host.noop("every setting in the configuration files is in effect")
        return
    lines = pending_lines(rows, reasons)
    if allowed:
        if host.state.is_executing:
            logger.info(f"{host.print_prefix}restarting {service} (allowed): {'; '.join(lines)}")
        yield StringCommand("runuser", "-u", "postgres", "--", postgres_bin, "-C", "max_connections",
                            "-c", f"config_file={config_file}", ">", "/dev/null")
        yield StringCommand("systemctl", "restart", service)
        yield _verify_nothing_pending(service)
        yield restarts.clear(MARKER_SERVICE)
        return
    restarts.warn_deferred(MARKER_SERVICE, ROLE_NAME, lines)
    yield from restarts.record(MARKER_SERVICE, restarts.marker_text(service, ROLE_NAME, lines), current)
