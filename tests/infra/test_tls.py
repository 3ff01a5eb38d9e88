"""Every host: the certificates the deploy installed (the inventory's CA and the host's own) are not about to
expire. Read on the host with openssl, from the installed files."""

from __future__ import annotations

import pytest

from tsdeploy.manifest import ManagedFile
from verifyhosts import Target

#: verify fails a certificate with fewer days than this left: time to renew it and deploy.
MIN_DAYS_LEFT = 14


@pytest.mark.control("ts-tls-01")
def test_certificate_is_valid_for_at_least_14_more_days(any_host: Target, certificate: ManagedFile) -> None:
    dest = certificate.dest(any_host.ctx)
    # -checkend exits 1 when the certificate expires within the given seconds, 0 otherwise.
    result = any_host.sudo("openssl x509 -noout -enddate -checkend %s -in %s", str(MIN_DAYS_LEFT * 86400), dest)
    end = result.stdout.partition("notAfter=")[2].partition("\n")[0].strip()
    assert end, f"{any_host}: openssl cannot read {dest} as a certificate: {result.stderr.strip()}"
    assert result.rc == 0, (f"{any_host}: {dest} ({certificate.variable}) expires on {end}, within "
                            f"{MIN_DAYS_LEFT} days: renew it, point {certificate.variable} at it and deploy")
