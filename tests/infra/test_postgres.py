"""db hosts: PostgreSQL service, running settings, roles, pg_hba (via pg_hba_file_rules), TLS, files, indexes."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from verifyhosts import Target

SNAKEOIL = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
_UNIT_FACTORS = {"B": 1 / 1024, "kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3,
                 "us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_WITH_UNIT = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB|us|ms|s|min|h|d)$")


def _in_setting_unit(value: str, unit: str | None) -> float:
    """Convert a postgresql.conf value ("512MB", "500", "30s") to pg_settings' unit ("8kB", "ms", ...)."""
    match = _WITH_UNIT.match(value)
    if not match or not unit:
        return float(value)
    base_unit = re.sub(r"^\d+", "", unit)
    block = int(unit[: -len(base_unit)] or 1)
    return float(match.group(1)) * _UNIT_FACTORS[match.group(2)] / _UNIT_FACTORS[base_unit] / block


def _normalize(value: str, row: dict) -> object:
    value = value.strip().strip("'")
    if row["vartype"] in ("integer", "real"):
        return round(_in_setting_unit(value, row["unit"]), 3)
    if row["vartype"] == "bool":
        return value.lower() in ("on", "true", "yes", "1")
    return ",".join(part.strip() for part in value.split(",")).lower()


@pytest.mark.control("postgres-01")
def test_postgresql_cluster_service_is_enabled_and_running(db: Target) -> None:
    service = db.host.service(db.ctx["postgres"]["service"])
    assert service.is_running, f"{db}: {db.ctx['postgres']['service']} is not running"
    assert db.host.service("postgresql").is_enabled, f"{db}: postgresql.service is not enabled at boot"


@pytest.mark.control("ts-pg-tuning")
def test_running_setting_equals_the_deploys_value(db: Target, pg_setting: str) -> None:
    # `pg_setting` is parametrized (conftest) with every setting the deploy's context computes for the db host.
    expected = next(item for item in db.ctx["postgres"]["settings"] if item["name"] == pg_setting)
    row = db.psql_json(f"SELECT name, setting, unit, vartype FROM pg_settings WHERE name = {_literal(pg_setting)}")[0]
    assert _normalize(row["setting"], row) == _normalize(expected["value"], row), (
        f"{db}: {pg_setting} is {row['setting']}{row['unit'] or ''} running, the deploy computes "
        f"{expected['value']} ({expected['reason']})")


@pytest.mark.control("ts-pg-tuning")
def test_no_setting_waits_for_a_restart(db: Target) -> None:
    pending = db.psql_json("SELECT name FROM pg_settings WHERE pending_restart")
    assert pending == [], f"{db}: settings changed but not applied until a restart: {pending}"


@pytest.mark.control("postgres-06")
def test_password_encryption_is_scram(db: Target) -> None:
    assert db.show("password_encryption") == "scram-sha-256"


@pytest.mark.control("postgres-06")
def test_every_stored_password_is_a_scram_verifier(db: Target) -> None:
    weak = db.psql_json("SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL "
                        "AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'")
    assert weak == [], f"{db}: roles with non-SCRAM passwords: {weak}"


@pytest.mark.control("postgres-07")
def test_exactly_one_role_has_superuser_createrole_or_createdb(db: Target) -> None:
    privileged = db.psql_json("SELECT rolname FROM pg_roles WHERE rolsuper OR rolcreaterole OR rolcreatedb")
    assert [row["rolname"] for row in privileged] == ["postgres"], f"{db}: privileged roles {privileged}"


@pytest.mark.control("postgres-07")
@pytest.mark.parametrize("role", ["app_user", "owner_user"])
def test_the_app_and_owner_roles_are_ordinary_login_roles(db: Target, role: str) -> None:
    user = db.ctx["postgres"][role]
    rows = db.psql_json(f"SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
                        f"FROM pg_roles WHERE rolname = {_literal(user)}")
    assert rows == [{"rolcanlogin": True, "rolsuper": False, "rolcreaterole": False, "rolcreatedb": False,
                     "rolreplication": False, "rolbypassrls": False}], f"{db}: role {user}: {rows}"


@pytest.mark.control("ts-pg-owner-role")
def test_the_owner_role_owns_the_database_and_every_object_in_its_schema(db: Target) -> None:
    pg = db.ctx["postgres"]
    rows = db.psql_json("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()",
                        database=pg["db_name"])
    assert rows == [{"owner": pg["owner_user"]}], f"{db}: database {pg['db_name']} owned by {rows}"
    # An extension's objects (pg_stat_statements' views) belong to the superuser that created the extension.
    others = db.psql_json("SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
                          "WHERE c.relnamespace = 'public'::regnamespace "
                          "AND c.relkind IN ('r', 'p', 'i', 'S', 'v', 'm') "
                          "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
                          "AND d.objid = c.oid AND d.deptype = 'e') "
                          f"AND pg_get_userbyid(c.relowner) <> {_literal(pg['owner_user'])}", database=pg["db_name"])
    assert others == [], f"{db}: objects in schema public not owned by {pg['owner_user']}: {others}"
    tables = db.psql_json("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'", database=pg["db_name"])
    assert tables[0]["n"] > 0, f"{db}: no table in schema public: the app's migrations have not run"


@pytest.mark.control("ts-pg-runtime-role")
def test_the_runtime_role_owns_nothing_and_may_create_nowhere(db: Target) -> None:
    pg = db.ctx["postgres"]
    user = _literal(pg["app_user"])
    rows = db.psql_json(
        "SELECT (SELECT count(*) FROM pg_shdepend WHERE deptype = 'o' AND refobjid = "
        f"(SELECT oid FROM pg_roles WHERE rolname = {user})) AS owned, "
        f"has_database_privilege({user}, current_database(), 'CREATE') AS create_in_database, "
        f"has_schema_privilege({user}, 'public', 'CREATE') AS create_in_public", database=pg["db_name"])
    assert rows == [{"owned": 0, "create_in_database": False, "create_in_public": False}], \
        f"{db}: runtime role {pg['app_user']}: {rows}"


@pytest.mark.control("ts-pg-runtime-role")
def test_the_runtime_role_reads_and_writes_every_table_and_nothing_more(db: Target) -> None:
    pg = db.ctx["postgres"]
    user = _literal(pg["app_user"])
    wrong = db.psql_json(
        "SELECT c.relname, "
        + ", ".join(f"has_table_privilege({user}, c.oid, '{p}') AS {p.lower()}"
                    for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"))
        + " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
        f"AND NOT (has_table_privilege({user}, c.oid, 'SELECT') AND has_table_privilege({user}, c.oid, 'INSERT') "
        f"AND has_table_privilege({user}, c.oid, 'UPDATE') AND has_table_privilege({user}, c.oid, 'DELETE') "
        f"AND NOT has_table_privilege({user}, c.oid, 'TRUNCATE') AND NOT has_table_privilege({user}, c.oid, "
        f"'REFERENCES') AND NOT has_table_privilege({user}, c.oid, 'TRIGGER'))", database=pg["db_name"])
    assert wrong == [], f"{db}: tables where {pg['app_user']} lacks DML or holds more: {wrong}"
    # CASE: the planner may call has_sequence_privilege before testing relkind, and it fails on a table.
    sequences = db.psql_json(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S' "
        f"AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege({user}, c.oid, 'USAGE') END",
        database=pg["db_name"])
    assert sequences == [], f"{db}: sequences {pg['app_user']} cannot use (inserts would fail): {sequences}"


#: DDL the runtime role tries (each in a transaction rolled back): PostgreSQL must refuse every one.
RUNTIME_DDL = [
    pytest.param("CREATE TABLE tsdeploy_verify_probe (id int)", id="create-table"),
    pytest.param("ALTER TABLE jobs ADD COLUMN tsdeploy_verify_probe int", id="alter-table"),
    pytest.param("DROP INDEX IF EXISTS ix_jobs_search_vector", id="drop-index"),
    pytest.param("CREATE INDEX tsdeploy_verify_probe ON jobs (id)", id="create-index"),
    pytest.param("TRUNCATE jobs", id="truncate"),
]


@pytest.mark.control("ts-pg-runtime-role")
@pytest.mark.parametrize("statement", RUNTIME_DDL)
def test_postgresql_refuses_ddl_from_the_runtime_role(db: Target, statement: str) -> None:
    pg = db.ctx["postgres"]
    # SET ROLE from the superuser's session checks exactly the runtime role's privileges; nothing is committed.
    script = f"BEGIN; SET ROLE {pg['app_user']}; {statement}; ROLLBACK;"
    result = db.sudo("-u postgres psql -X -A -t -q -v ON_ERROR_STOP=1 -d %s -c %s", pg["db_name"], script)
    assert result.rc != 0 and ("permission denied" in result.stderr or "must be owner" in result.stderr), \
        f"{db}: {pg['app_user']} ran `{statement}` (exit {result.rc}: {result.stderr.strip()})"


@pytest.mark.control("CIS-PG-5.5")
def test_app_role_connection_limit_is_the_topologys_demand(db: Target) -> None:
    user, expected = db.ctx["postgres"]["app_user"], db.ctx["postgres"]["connection_limit"]
    rows = db.psql_json(f"SELECT rolconnlimit FROM pg_roles WHERE rolname = {_literal(user)}")
    assert rows == [{"rolconnlimit": expected}], f"{db}: {user} connection limit {rows}, expected {expected}"


@pytest.mark.control("CIS-PG-4.10")
def test_public_schema_is_not_writable_by_public(db: Target) -> None:
    rows = db.psql_json("SELECT has_schema_privilege('public', 'public', 'CREATE') AS public_can_create",
                        database=db.ctx["postgres"]["db_name"])
    assert rows == [{"public_can_create": False}], f"{db}: PUBLIC may create in schema public"


@pytest.mark.control("CIS-PG-5.2")
def test_listen_addresses_are_localhost_and_the_private_address(db: Target) -> None:
    listen = {part.strip() for part in db.show("listen_addresses").split(",")}
    assert listen == {"localhost", db.address}, f"{db}: listen_addresses = {listen}"


@pytest.mark.control("postgres-11")
def test_ssl_is_on_with_the_deploys_certificate(db: Target) -> None:
    assert db.show("ssl") == "on"
    cert_file = db.show("ssl_cert_file")
    assert cert_file != SNAKEOIL and "snakeoil" not in db.sudo_check("readlink -f %s", cert_file)
    issuer = db.sudo_check("openssl x509 -noout -issuer -subject -in %s", cert_file)
    lines = issuer.strip().splitlines()
    assert lines[0].split("=", 1)[1] != lines[1].split("=", 1)[1], f"{db}: self-signed certificate {issuer}"


def _starttls(db: Target, *options: str) -> Any:
    return db.host.run("openssl s_client -starttls postgres -connect %s:%s " + " ".join(options) + " </dev/null",
                       db.address, str(db.ctx["postgres"]["port"]))


def _pem(text: str) -> str:
    match = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return match.group(0) if match else ""


@pytest.mark.control("postgres-11")
def test_live_starttls_handshake_presents_the_configured_certificate(db: Target) -> None:
    result = _starttls(db, "-tls1_2")
    assert result.rc == 0, f"{db}: STARTTLS handshake failed: {result.stderr.strip()[-300:]}"
    served = _pem(result.stdout)
    configured = _pem(db.sudo_check("cat %s", db.show("ssl_cert_file")))
    assert served and served == configured, f"{db}: the handshake served another certificate than ssl_cert_file"


@pytest.mark.control("CIS-PG-6.8")
def test_ssl_min_protocol_version_is_tls12(db: Target) -> None:
    assert db.show("ssl_min_protocol_version") in ("TLSv1.2", "TLSv1.3")


@pytest.mark.control("CIS-PG-6.8")
def test_live_tls11_handshake_is_refused(db: Target) -> None:
    result = _starttls(db, "-tls1_1", "-cipher", "'DEFAULT:@SECLEVEL=0'")
    # The server must be the one refusing (alert 70), not the client failing to offer TLS 1.1.
    refused = "alert protocol version" in result.stdout + result.stderr
    assert refused and "BEGIN CERTIFICATE" not in result.stdout, (
        f"{db}: TLS 1.1 was not refused by the server: {result.stderr.strip()[-300:]}")


def _hba_rules(db: Target) -> list[dict]:
    return db.psql_json("SELECT line_number, type, database, user_name, address, netmask, auth_method, error "
                        "FROM pg_hba_file_rules")


def _network_rules(db: Target) -> list[dict]:
    return [rule for rule in _hba_rules(db) if rule["type"] != "local"]


@pytest.mark.control("postgres-13")
def test_pg_hba_file_parses_without_errors(db: Target) -> None:
    errors = [rule for rule in _hba_rules(db) if rule["error"]]
    assert errors == [], f"{db}: pg_hba.conf lines with errors: {errors}"


@pytest.mark.control("postgres-13")
def test_pg_hba_uses_no_weak_authentication_method(db: Target) -> None:
    weak = [rule for rule in _hba_rules(db) if rule["auth_method"] in ("trust", "password", "md5", "ident")]
    network_not_scram = [rule for rule in _network_rules(db) if rule["auth_method"] != "scram-sha-256"]
    assert weak == [] and network_not_scram == [], f"{db}: weak pg_hba lines {weak + network_not_scram}"


@pytest.mark.control("postgres-14")
def test_pg_hba_local_lines_use_peer_only(db: Target) -> None:
    local = [rule for rule in _hba_rules(db) if rule["type"] == "local"]
    assert local and all(rule["auth_method"] == "peer" for rule in local), f"{db}: local lines {local}"


@pytest.mark.control("CIS-PG-5.8")
def test_pg_hba_network_lines_are_hostssl_only(db: Target) -> None:
    wrong = [rule for rule in _network_rules(db) if rule["type"] != "hostssl"]
    assert wrong == [], f"{db}: non-hostssl network lines {wrong}"


@pytest.mark.control("CIS-PG-5.9")
def test_pg_hba_network_lines_name_the_app_database_and_user(db: Target) -> None:
    pg = db.ctx["postgres"]
    users = ([pg["app_user"]], [pg["owner_user"]]) + (([pg["pgbouncer"]["auth_user"]],) if pg["pgbouncer"] else ())
    wrong = [rule for rule in _network_rules(db)
             if rule["database"] != [pg["db_name"]] or rule["user_name"] not in users]
    assert wrong == [], (f"{db}: network lines not limited to {pg['db_name']} and {pg['app_user']} or "
                         f"{pg['owner_user']}: {wrong}")


@pytest.mark.control("CIS-PG-5.10")
def test_no_superuser_can_log_in_over_tcp(db: Target) -> None:
    supers = {row["rolname"] for row in db.psql_json("SELECT rolname FROM pg_roles WHERE rolsuper")}
    wrong = [rule for rule in _network_rules(db)
             if {"all", "+postgres"} & set(rule["user_name"] or []) or supers & set(rule["user_name"] or [])]
    assert wrong == [], f"{db}: network lines a superuser can use: {wrong}"


@pytest.mark.control("CIS-PG-5.11")
def test_pg_hba_network_lines_admit_only_app_host_addresses(db: Target) -> None:
    pg = db.ctx["postgres"]
    allowed = {ipaddress.ip_network(address) for address in
               [*pg["hba_app_hosts"], *(pg["pgbouncer"]["addresses"] if pg["pgbouncer"] else [])]}
    wrong = []
    for rule in _network_rules(db):
        try:
            network = ipaddress.ip_network(f"{rule['address']}/{rule['netmask']}" if rule["netmask"]
                                           else rule["address"], strict=False)
        except ValueError:
            wrong.append(rule)
            continue
        if network not in allowed:
            wrong.append(rule)
    assert wrong == [], (f"{db}: network lines wider than the app and pooler hosts {sorted(map(str, allowed))}: "
                         f"{wrong}")


LOGGING = [
    pytest.param("log_connections", "on", id="log_connections"),
    pytest.param("log_disconnections", "on", id="log_disconnections"),
    pytest.param("log_statement", "ddl", id="log_statement"),
]


@pytest.mark.control("CIS-PG-3.1")
@pytest.mark.parametrize(("name", "expected"), LOGGING)
def test_logging_setting_is_on(db: Target, name: str, expected: str) -> None:
    assert db.show(name) == expected, f"{db}: {name} = {db.show(name)}"


@pytest.mark.control("CIS-PG-3.1")
def test_log_line_prefix_names_time_pid_db_user_app_and_client(db: Target) -> None:
    prefix = db.show("log_line_prefix")
    missing = [escape for escape in ("%p", "%d", "%u", "%a", "%h") if escape not in prefix]
    assert ("%m" in prefix or "%t" in prefix) and not missing, f"{db}: log_line_prefix {prefix!r} lacks {missing}"


@pytest.mark.control("CIS-PG-3.1")
def test_slow_statements_are_logged_from_the_apps_threshold(db: Target) -> None:
    expected_ms = round(db.service("app")["slow_query_threshold"] * 1000)
    rows = db.psql_json("SELECT setting FROM pg_settings WHERE name = 'log_min_duration_statement'")
    assert rows == [{"setting": str(expected_ms)}], f"{db}: log_min_duration_statement {rows}, want {expected_ms}"


@pytest.mark.control("postgres-15")
def test_connection_logging_is_enabled(db: Target) -> None:
    assert (db.show("log_connections"), db.show("log_disconnections")) == ("on", "on")


def _stat(db: Target, path: str) -> tuple[str, str, str]:
    owner, group, mode = db.sudo_check("stat -c '%%U %%G %%a' %s", path).split()
    return owner, group, mode


@pytest.mark.control("postgres-09")
def test_data_directory_is_0700_postgres(db: Target) -> None:
    data_dir = db.show("data_directory")
    assert _stat(db, data_dir) == ("postgres", "postgres", "700"), f"{db}: {data_dir} {_stat(db, data_dir)}"


@pytest.mark.control("postgres-10")
@pytest.mark.parametrize(("name", "mode"), [("", "700"), ("postgresql.conf", "640"), ("pg_hba.conf", "600")],
                         ids=["config-dir", "postgresql.conf", "pg_hba.conf"])
def test_config_file_mode_and_owner(db: Target, name: str, mode: str) -> None:
    path = f"{db.ctx['postgres']['conf_dir']}/{name}".rstrip("/")
    assert _stat(db, path) == ("postgres", "postgres", mode), f"{db}: {path} is {_stat(db, path)}, want {mode}"


@pytest.mark.control("ts-pg-indexes")
def test_the_apps_indexes_exist_and_are_valid(db: Target) -> None:
    from talentsphere.indexes import INDEXES  # the app's one definition of its 38 indexes

    names = sorted(index.name for index in INDEXES)
    rows = db.psql_json("SELECT c.relname AS name, i.indisvalid AND i.indisready AS valid "
                        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
                        database=db.ctx["postgres"]["db_name"])
    present = {row["name"]: row["valid"] for row in rows}
    missing = [name for name in names if name not in present]
    invalid = [name for name in names if present.get(name) is False]
    assert len(names) == 38 and not missing and not invalid, (
        f"{db}: {len(names)} indexes defined; missing {missing}; invalid {invalid}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pending_marker(target: Target, service: str) -> str:
    """The deferred-restart marker the deploy wrote (roles/common/restarts.py), "" when there is none."""
    from roles.common.restarts import marker_path

    return target.sudo("cat %s", marker_path(service)).stdout.strip()


@pytest.mark.control("ts-restart-pending")
def test_no_restart_pending(db: Target) -> None:
    rows = db.psql_json("SELECT name, current_setting(name) AS running, (SELECT f.setting FROM pg_file_settings f "
                        "WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1) AS new FROM pg_settings s "
                        "WHERE pending_restart ORDER BY name")
    pending = "; ".join(f"{row['name']}: {row['running']} -> {row['new']}" for row in rows)
    assert not rows, (f"{db}: PostgreSQL needs a restart to apply {pending} (deferred by the deploy); fix: "
                      f"tsdeploy deploy INVENTORY --allow-restart postgres")
