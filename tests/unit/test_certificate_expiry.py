"""An expired TLS certificate in the inventory is refused before any host is touched, naming the variable, the
file, the date and the fix; a current one passes. The certificates are real (cryptography), dated as needed."""

from __future__ import annotations

import datetime
import pathlib
import re

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tsdeploy import checks
from tsdeploy.inventory import load

from test_inventory import problems_of, write_inventory
from test_rendering_golden import _lab_inventory


def certificate(path: pathlib.Path, *, days_left: float) -> pathlib.Path:
    """A self-signed PEM certificate that expires `days_left` days from now (negative: already expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, path.stem)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now + datetime.timedelta(days=days_left))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_host_certificate_that_expired_is_refused_naming_host_variable_date_and_fix(tmp_path) -> None:
    expired = certificate(tmp_path / "db1-old.crt", days_left=-1)
    problems = problems_of(write_inventory(tmp_path, host_overrides={"db1": {"tls_cert_file": str(expired)}}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"db1: tls_cert_file = '{expired}' (inventory/hosts.yml:")
    assert re.search(r"is a certificate that expired on \w{3} +\d+ [\d:]+ \d{4} GMT; fix:", problems[0]), problems[0]
    assert problems[0].endswith("fix: renew it and point the variable at the new file")


def test_an_expired_ca_certificate_is_refused_on_every_host_whose_roles_verify_with_it(tmp_path) -> None:
    expired = certificate(tmp_path / "ca-old.crt", days_left=-30)
    problems = problems_of(write_inventory(tmp_path, main_overrides={"tls_ca_cert_file": str(expired)}))
    # The app, PostgreSQL, Redis and nginx roles list the CA among their variables: every host of this inventory.
    assert sorted(problem.split(":", 1)[0] for problem in problems) == ["app1", "app2", "cache1", "db1", "lb1"]
    assert all("tls_ca_cert_file" in problem and "expired on" in problem for problem in problems)


def test_a_backup_host_with_an_expired_certificate_is_refused_too(tmp_path) -> None:
    # backup1 serves pgBackRest's TLS in the split topology; it runs no other role that lists the TLS files.
    inventory = _lab_inventory(tmp_path, "split")
    expired = certificate(tmp_path / "backup1-old.crt", days_left=-2)
    hosts = inventory / "hosts.yml"
    document = yaml.safe_load(hosts.read_text())
    document["all"]["hosts"]["backup1"]["tls_cert_file"] = str(expired)
    hosts.write_text(yaml.safe_dump(document))
    problems = problems_of(inventory)
    assert [problem.split(":", 1)[0] for problem in problems] == ["backup1"], problems
    assert "tls_cert_file" in problems[0] and "expired on" in problems[0]


def test_certificates_still_valid_pass_even_if_they_expire_soon(tmp_path) -> None:
    # Expiring soon is verify's finding (ts-tls-01), not a reason to refuse a deploy that may be the renewal.
    soon = certificate(tmp_path / "db1.crt", days_left=2)
    ca = certificate(tmp_path / "ca.crt", days_left=3650)
    load(write_inventory(tmp_path, host_overrides={"db1": {"tls_cert_file": str(soon)}},
                         main_overrides={"tls_ca_cert_file": str(ca)}))


@pytest.mark.parametrize("days_left", [-1, 1, 365])
def test_the_check_refuses_exactly_the_expired_ones(tmp_path, days_left) -> None:
    problem = checks.current_certificate(str(certificate(tmp_path / "c.crt", days_left=days_left)))
    assert (problem is not None) == (days_left < 0)
