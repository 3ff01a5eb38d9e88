"""The database's owner role migrates; the app's runtime role only reads and writes rows.

The postgres role's check and fix (`sql.split_check`, `sql.split_fix`) run FOR REAL against a throwaway
PostgreSQL cluster: on a fresh database, and on one deployed before the split (the runtime role owns the
database, its tables, indexes and sequences). After the fix the runtime role can use every table, including
one a later migration adds as the owner, and PostgreSQL refuses its DDL; the check then reports nothing to do.
Skipped without root, the postgres account or PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from roles.postgres import sql

from local_postgres import CLUSTERS_NEED, Cluster, cannot_run_clusters, throwaway_cluster

PORT = 5484
OWNER, RUNTIME = "talentsphere_owner", "talentsphere"
PASSWORDS = {OWNER: "9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a",
             RUNTIME: "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"}
#: The app's kind of schema: a table with a serial key, an index, a second table referencing it.
SCHEMA = ("CREATE TABLE companies (id serial PRIMARY KEY, name text NOT NULL); "
          "CREATE TABLE jobs (id serial PRIMARY KEY, company_id int REFERENCES companies (id), title text); "
          "CREATE INDEX ix_jobs_title ON jobs (title); "
          "INSERT INTO companies (name) VALUES ('Acme'); INSERT INTO jobs (company_id, title) VALUES (1, 'Dev')")

pytestmark = pytest.mark.skipif(cannot_run_clusters(), reason=CLUSTERS_NEED)
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster("tsd-roles-", PORT) as cluster:
        for user, password in PASSWORDS.items():
            for statement in sql.role_statements(user, 5, None, password):
                cluster.admin(statement)
        yield cluster


def split_is_done(cluster: Cluster, database: str) -> bool:
    return cluster.psql(sql.split_check(OWNER, RUNTIME), database).stdout.strip() == "t"


def as_role(cluster: Cluster, database: str, role: str, statement: str) -> tuple[bool, str]:
    """Run `statement` with `role`'s privileges (SET ROLE in the superuser's session); committed if it works."""
    result = cluster.psql(f"SET ROLE {role}; {statement}", database, check=False)
    return result.returncode == 0, result.stdout.strip() + result.stderr.strip()


def fresh_database(cluster: Cluster) -> str:
    """A database as the role creates it now: owned by the owner, CREATE on public revoked from PUBLIC."""
    name = f"app{next(_names)}"
    cluster.admin(f"CREATE DATABASE {name} OWNER {OWNER}")
    cluster.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", name)
    return name


def legacy_database(cluster: Cluster) -> str:
    """A database deployed before the split: the runtime role owns it and migrated its schema."""
    name = f"legacy{next(_names)}"
    cluster.admin(f"CREATE DATABASE {name} OWNER {RUNTIME}")
    cluster.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", name)
    ok, output = as_role(cluster, name, RUNTIME, SCHEMA)
    assert ok, output
    return name


def test_a_fresh_database_is_split_once_and_then_reports_nothing_to_do(cluster: Cluster) -> None:
    database = fresh_database(cluster)
    assert not split_is_done(cluster, database)  # no default privileges yet
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert split_is_done(cluster, database)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)  # idempotent
    assert split_is_done(cluster, database)


def test_tables_a_later_migration_adds_are_usable_by_the_runtime_role_at_once(cluster: Cluster) -> None:
    database = fresh_database(cluster)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    ok, output = as_role(cluster, database, OWNER, SCHEMA)
    assert ok, output
    ok, output = as_role(cluster, database, RUNTIME, "INSERT INTO jobs (company_id, title) VALUES (1, 'Ops') "
                                                    "RETURNING id")
    assert ok and output == "2", output  # the sequence too
    ok, output = as_role(cluster, database, RUNTIME, "UPDATE jobs SET title = 'SRE' WHERE id = 2; "
                                                    "DELETE FROM jobs WHERE id = 2; SELECT count(*) FROM jobs")
    assert ok and output == "1", output
    assert split_is_done(cluster, database)  # nothing left for the next deploy to do


@pytest.mark.parametrize("statement", [
    "CREATE TABLE probe (id int)",
    "ALTER TABLE jobs ADD COLUMN probe int",
    "DROP INDEX ix_jobs_title",
    "CREATE INDEX ix_probe ON jobs (company_id)",
    "TRUNCATE jobs",
    "DROP TABLE jobs",
    "CREATE SCHEMA probe",
])
def test_postgresql_refuses_the_runtime_roles_ddl(cluster: Cluster, statement: str) -> None:
    database = fresh_database(cluster)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert as_role(cluster, database, OWNER, SCHEMA)[0]
    ok, output = as_role(cluster, database, RUNTIME, statement)
    assert not ok and ("permission denied" in output or "must be owner" in output), output


def test_a_database_the_runtime_role_owned_is_handed_to_the_owner_with_its_rows(cluster: Cluster) -> None:
    database = legacy_database(cluster)
    assert not split_is_done(cluster, database)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert split_is_done(cluster, database)
    owners = cluster.psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                          "WHERE relnamespace = 'public'::regnamespace", database).stdout.split()
    assert owners == [OWNER]
    database_owner = cluster.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'")
    assert database_owner.stdout.strip() == OWNER
    ok, output = as_role(cluster, database, RUNTIME, "INSERT INTO jobs (company_id, title) VALUES (1, 'Ops'); "
                                                    "SELECT string_agg(title, ',' ORDER BY id) FROM jobs")
    assert ok and output == "Dev,Ops", output
    assert not as_role(cluster, database, RUNTIME, "DROP INDEX ix_jobs_title")[0]


@pytest.mark.parametrize("drift", [
    f"GRANT CREATE ON SCHEMA public TO {RUNTIME}",
    f"GRANT CREATE ON DATABASE {{database}} TO {RUNTIME}",
    f"REVOKE INSERT ON jobs FROM {RUNTIME}",
    f"REVOKE USAGE ON SEQUENCE jobs_id_seq FROM {RUNTIME}",
    f"ALTER TABLE companies OWNER TO {RUNTIME}",
    f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public REVOKE DELETE ON TABLES FROM {RUNTIME}",
])
def test_drift_from_the_split_is_seen_and_repaired(cluster: Cluster, drift: str) -> None:
    database = fresh_database(cluster)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert as_role(cluster, database, OWNER, SCHEMA)[0]
    assert split_is_done(cluster, database)
    cluster.psql(drift.format(database=database), database)
    assert not split_is_done(cluster, database)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert split_is_done(cluster, database)


def test_an_extensions_objects_neither_block_the_check_nor_get_the_apps_grants(cluster: Cluster) -> None:
    database = fresh_database(cluster)
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    assert as_role(cluster, database, OWNER, SCHEMA)[0]
    # As the role does: the superuser creates the extensions after the split (its views land in public).
    cluster.psql("CREATE EXTENSION pg_stat_statements; CREATE EXTENSION pg_trgm", database)
    assert split_is_done(cluster, database)  # a second deploy finds nothing to do
    cluster.psql(sql.split_fix(database, OWNER, RUNTIME), database)
    granted = cluster.psql(f"SELECT has_table_privilege('{RUNTIME}', 'pg_stat_statements', 'INSERT')", database)
    assert granted.stdout.strip() == "f"
