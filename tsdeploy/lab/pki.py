"""The lab's certificate authority and per-host server certificates (openssl, EC P-256 keys, 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from tsdeploy.lab.system import run

CURVE = "prime256v1"
DAYS = 825  # the longest validity browsers and most TLS clients accept for server certificates


def _new_key(path: Path) -> None:
    old_umask = os.umask(0o077)  # the key is never readable by anyone but root, not even for an instant
    try:
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-out", path])
    finally:
        os.umask(old_umask)
    path.chmod(0o600)


def ensure_ca(directory: Path, lab_name: str) -> tuple[Path, Path]:
    """Create the lab CA once; return (certificate, key)."""
    cert, key = directory / "ca.crt", directory / "ca.key"
    if cert.is_file() and key.is_file():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    _new_key(key)
    run([
        "openssl", "req", "-x509", "-new", "-key", key, "-sha256", "-days", str(DAYS), "-out", cert,
        "-subj", f"/O=TalentSphere Deploy lab/CN=TalentSphere lab CA ({lab_name})",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ])
    return cert, key


def san_extension(hostname: str, address: str) -> str:
    """The extensions of a host certificate valid for the host's name and private address.

    serverAuth and clientAuth: pgBackRest's TLS transport authenticates both ends with their host
    certificates (the db host's and the backup host's, each accepted by its CN) and refuses a client
    certificate without clientAuth.
    """
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName=DNS:{hostname},IP:{address}\n"
    )


def ensure_host_cert(directory: Path, ca: tuple[Path, Path], hostname: str, address: str) -> tuple[Path, Path]:
    """Issue the host's certificate once (re-issued when its address or usages changed); return (cert, key)."""
    cert, key = directory / f"{hostname}.crt", directory / f"{hostname}.key"
    if cert.is_file() and key.is_file():
        extensions = run(["openssl", "x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage", "-in", cert]).stdout
        if f"IP Address:{address}" in extensions and "TLS Web Client Authentication" in extensions:
            return cert, key
    _new_key(key)
    csr, ext = directory / f"{hostname}.csr", directory / f"{hostname}.ext"
    ext.write_text(san_extension(hostname, address))
    run(["openssl", "req", "-new", "-key", key, "-subj", f"/CN={hostname}", "-out", csr])
    ca_cert, ca_key = ca
    run([
        "openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
        "-sha256", "-days", str(DAYS), "-extfile", ext, "-out", cert,
    ])
    csr.unlink()
    ext.unlink()
    return cert, key
