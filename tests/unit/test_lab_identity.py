"""Lab identities: names, the CA and host certificates, generated secrets and host configuration files."""

import stat
import subprocess

import pytest

from tsdeploy.lab import host, pki
from tsdeploy.lab.secrets import SECRET_NAMES, ensure_secrets, ensure_vault_password
from tsdeploy.lab.state import check_name
from tsdeploy.lab.system import LabError
from tsdeploy.lab.topology import hosts_of


@pytest.mark.parametrize("name", ["lab", "ci-split", "e2e-trixie-12345"])
def test_valid_lab_names_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "1lab", "lab_x", "a" * 25, "../etc"])
def test_invalid_lab_names_are_refused_with_the_rule(name):
    with pytest.raises(LabError, match="lowercase letters, digits and '-'"):
        check_name(name)


def test_unknown_topology_names_the_choices():
    with pytest.raises(LabError, match="single, split"):
        hosts_of("triple")


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_host_certificate_is_signed_by_the_lab_ca_for_its_name_and_address(tmp_path):
    ca = pki.ensure_ca(tmp_path, "unit")
    cert, key = pki.ensure_host_cert(tmp_path, ca, "lb1", "198.18.9.14")
    verify = subprocess.run(["openssl", "verify", "-CAfile", ca[0], cert], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", cert],
                         capture_output=True, text=True, check=True).stdout
    assert "DNS:lb1" in san and "IP Address:198.18.9.14" in san
    assert _mode(key) == _mode(ca[1]) == 0o600


def test_certificates_are_reused_until_the_address_changes(tmp_path):
    ca = pki.ensure_ca(tmp_path, "unit")
    cert, _ = pki.ensure_host_cert(tmp_path, ca, "db1", "198.18.9.10")
    first = cert.read_bytes()
    assert pki.ensure_ca(tmp_path, "unit") == ca
    assert pki.ensure_host_cert(tmp_path, ca, "db1", "198.18.9.10")[0].read_bytes() == first
    assert pki.ensure_host_cert(tmp_path, ca, "db1", "198.18.9.20")[0].read_bytes() != first


def test_host_certificates_serve_and_authenticate_clients(tmp_path):
    # pgBackRest's TLS transport authenticates the db host and the backup host to each other with these
    # certificates, and refuses a client certificate that is not for clientAuth.
    ca = pki.ensure_ca(tmp_path, "unit")
    cert, _ = pki.ensure_host_cert(tmp_path, ca, "backup1", "198.18.9.11")
    usage = subprocess.run(["openssl", "x509", "-noout", "-ext", "extendedKeyUsage", "-subject", "-in", cert],
                           capture_output=True, text=True, check=True).stdout
    assert "TLS Web Server Authentication" in usage and "TLS Web Client Authentication" in usage
    assert "CN = backup1" in usage or "CN=backup1" in usage


def test_a_certificate_without_client_authentication_is_reissued(tmp_path):
    ca = pki.ensure_ca(tmp_path, "unit")
    cert, _ = pki.ensure_host_cert(tmp_path, ca, "db1", "198.18.9.10")
    ext = tmp_path / "server-only.ext"
    ext.write_text(pki.san_extension("db1", "198.18.9.10").replace("serverAuth,clientAuth", "serverAuth"))
    csr = tmp_path / "db1.csr"
    subprocess.run(["openssl", "req", "-new", "-key", tmp_path / "db1.key", "-subj", "/CN=db1", "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                    "-days", "30", "-extfile", ext, "-out", cert], check=True, capture_output=True)
    older = cert.read_bytes()
    assert pki.ensure_host_cert(tmp_path, ca, "db1", "198.18.9.10")[0].read_bytes() != older


def test_secrets_are_generated_once_and_kept_private(tmp_path):
    first = ensure_secrets(tmp_path)
    assert set(first) == set(SECRET_NAMES)
    assert len(set(first.values())) == len(SECRET_NAMES)
    assert all(len(value) >= 32 for value in first.values())
    assert ensure_secrets(tmp_path) == first
    assert _mode(tmp_path / "secrets.json") == 0o600


def test_vault_password_file_is_created_once_with_mode_0600(tmp_path):
    path = ensure_vault_password(tmp_path)
    content = path.read_text()
    assert ensure_vault_password(tmp_path).read_text() == content
    assert _mode(path) == 0o600


def test_network_file_gives_host0_its_static_address_and_gateway():
    unit = host.network_unit("198.18.0.10", 24, "198.18.0.1")
    assert "[Match]\nName=host0\n" in unit
    assert "Address=198.18.0.10/24\nGateway=198.18.0.1\n" in unit
    # It must sort before the image's 80-container-host0.network or the host only gets a link-local address.
    assert host.NETWORK_FILE.rsplit("/", 1)[1] < "80-container-host0.network"


def test_hosts_file_names_every_lab_host():
    text = host.hosts_file("app1", {"db1": "198.18.0.10", "app1": "198.18.0.12"})
    assert "198.18.0.10\tdb1\n" in text and "127.0.1.1\tapp1\n" in text
