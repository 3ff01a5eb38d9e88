"""pooler hosts: PgBouncer running, serving TLS only with a certificate the inventory's CA verifies, and what it
may open to PostgreSQL within max_connections."""

from __future__ import annotations

import pytest

from roles.registry import Group
from verifyhosts import Target

SERVICE = "pgbouncer"


@pytest.mark.control("ts-pgbouncer-01")
def test_pgbouncer_is_enabled_and_running(pooler: Target) -> None:
    assert (problem := pooler.service_problem(SERVICE)) is None, problem


@pytest.mark.control("ts-pgbouncer-01")
def test_pgbouncer_serves_a_certificate_the_inventorys_ca_verifies_for_its_address(pooler: Target) -> None:
    bouncer = pooler.ctx["pgbouncer"]
    problem = pooler.tls_problem(bouncer["address"], bouncer["port"], bouncer["tls_ca"], starttls="postgres")
    assert problem is None, problem


@pytest.mark.control("ts-pgbouncer-01")
def test_pgbouncer_requires_tls_from_clients(pooler: Target) -> None:
    settings = {key.strip(): value.strip() for key, _, value in
                (line.partition("=") for line in pooler.sudo_check("cat %s", "/etc/pgbouncer/pgbouncer.ini")
                 .splitlines() if "=" in line and not line.lstrip().startswith(";"))}
    assert settings.get("client_tls_sslmode") == "require", f"{pooler}: client_tls_sslmode {settings}"
    assert settings.get("auth_type") == "scram-sha-256", f"{pooler}: auth_type {settings.get('auth_type')}"


@pytest.mark.control("ts-pgbouncer-02")
def test_every_pooler_fits_in_postgresqls_max_connections(pooler: Target, db: Target) -> None:
    poolers = pooler.topology.hosts(Group.POOLER)
    opened = sum(pooler.topology.host_context(name)["pgbouncer"]["max_db_connections"] for name in poolers)
    running = int(db.show("max_connections"))
    reserved = int(db.show("superuser_reserved_connections"))
    assert opened <= running - reserved, (f"{db}: the poolers may open {opened} connections but max_connections "
                                          f"{running} leaves {running - reserved} to non-superusers")
