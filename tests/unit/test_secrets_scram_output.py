"""The app role's SCRAM verifier never reaches pyinfra's output, at any verbosity.

pyinfra prints a fact's command with -vv and its output with -vvv. These tests run the postgres role's fact
command FOR REAL (its exact shell line, `runuser -u postgres -- psql ...`) against a throwaway PostgreSQL
cluster in /tmp holding the role with a known password, and check what pyinfra would print: neither the
stored verifier nor anything with the SCRAM prefix; and that the role's decision (`role_statements`) still
tells an unchanged password from a changed one. Skipped without root, the postgres account or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roles.postgres import sql

from local_postgres import CLUSTERS_NEED, Cluster, cannot_run_clusters, throwaway_cluster

PORT = 5483
USER = "talentsphere"
PASSWORD = "1f6e0c2b9d8a47f3b5e6c7d8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8"
LIMIT = 42

pytestmark = pytest.mark.skipif(cannot_run_clusters(), reason=CLUSTERS_NEED)


def role_row(cluster: Cluster) -> list[str]:
    """The login_role fact's data for USER: its command run for real, its output processed by the fact."""
    output = cluster.fact_output(sql.PsqlQuery().command(database="postgres", query=sql.role_query(USER)))
    return sql.PsqlQuery().process(output.stdout.splitlines())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster("tsd-scram-", PORT) as cluster:
        yield cluster


@pytest.fixture
def stored_verifier(cluster: Cluster) -> Iterator[str]:
    """USER exists as login_role leaves it, with PASSWORD's verifier; the verifier as PostgreSQL stores it."""
    for statement in sql.role_statements(USER, LIMIT, None, PASSWORD):
        cluster.admin(statement)
    stored = cluster.fact_output(f"psql -X -At -U postgres -d postgres -c "
                                 f"\"SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'\"").stdout.strip()
    assert stored.startswith("SCRAM-SHA-256$") and stored.split("$")[1].count(":") == 1
    yield stored
    cluster.admin(f"DROP ROLE {USER}")


def test_the_facts_command_and_output_never_hold_the_verifier(cluster: Cluster, stored_verifier: str) -> None:
    command = sql.PsqlQuery().command(database="postgres", query=sql.role_query(USER))  # printed with -vv
    output = cluster.fact_output(command)  # printed with -vvv
    printed = command + output.stdout + output.stderr
    _, _, stored_key_and_server_key = stored_verifier.rpartition("$")
    for part in (stored_verifier, "SCRAM-SHA-256$", *stored_key_and_server_key.split(":"), PASSWORD):
        assert part not in printed
    assert len(role_row(cluster)) == 1


def test_an_unchanged_password_and_attributes_need_no_statement(cluster: Cluster, stored_verifier: str) -> None:
    row = role_row(cluster)[0]
    assert sql.role_statements(USER, LIMIT, row, PASSWORD) == []


def test_a_changed_password_is_set_again_only_as_a_new_verifier(cluster: Cluster, stored_verifier: str) -> None:
    new_password = PASSWORD[::-1]
    statements = sql.role_statements(USER, LIMIT, role_row(cluster)[0], new_password)
    assert len(statements) == 1 and statements[0].startswith(f"ALTER ROLE {USER} PASSWORD 'SCRAM-SHA-256$")
    assert new_password not in statements[0]
    cluster.admin(statements[0])
    assert sql.role_statements(USER, LIMIT, role_row(cluster)[0], new_password) == []


def test_changed_attributes_are_fixed_without_touching_the_password(cluster: Cluster, stored_verifier: str) -> None:
    cluster.admin(f"ALTER ROLE {USER} CREATEDB CONNECTION LIMIT 3")
    assert sql.role_statements(USER, LIMIT, role_row(cluster)[0], PASSWORD) == [
        f"ALTER ROLE {USER} {sql.ROLE_ATTRIBUTES} {LIMIT};\n"]


def test_an_md5_or_missing_password_never_matches() -> None:
    assert not sql.password_matches("", "", PASSWORD)
    assert not sql.password_matches("4096:not base64!", "00", PASSWORD)
