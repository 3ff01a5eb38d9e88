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


@pytest.mark.control("ts-tls-02")
def test_the_acme_certificate_is_served_valid_for_the_site_and_renewed(lb: Target) -> None:
    nginx = lb.ctx["nginx"]
    if not nginx["acme"]:
        pytest.skip("nginx_acme_directory is not set: the lb serves tls_cert_file, checked by ts-tls-01")
    cert, name, live = nginx["tls_cert_path"], nginx["server_name"], nginx["acme_live_dir"]
    target = lb.sudo("readlink %s", cert).stdout.strip()
    assert target == f"{live}/fullchain.pem", (
        f"{lb}: {cert} is {'a link to ' + target if target else 'not a link'}, not certbot's certificate "
        f"{live}/fullchain.pem: the issuance did not finish; deploy again (its output names the error)")
    result = lb.sudo("openssl x509 -noout -enddate -ext subjectAltName -checkend %s -in %s",
                     str(MIN_DAYS_LEFT * 86400), cert)
    end = result.stdout.partition("notAfter=")[2].partition("\n")[0].strip()
    assert f"DNS:{name}" in result.stdout, f"{lb}: certbot's certificate is not for {name}: {result.stdout}"
    assert result.rc == 0, (f"{lb}: the ACME certificate for {name} expires on {end}, within {MIN_DAYS_LEFT} days, "
                            "so renewals fail: see `journalctl -u certbot.service` on the host")
    # nginx serves the file as it is now: a renewal was followed by a reload (the deploy hook).
    served = lb.sudo("sh -c %s", f"openssl s_client -connect 127.0.0.1:443 -servername {name} </dev/null 2>/dev/null"
                                 " | openssl x509 -noout -fingerprint -sha256").stdout.strip()
    on_disk = lb.sudo("openssl x509 -noout -fingerprint -sha256 -in %s", cert).stdout.strip()
    assert served and served == on_disk, (f"{lb}: nginx serves {served or 'nothing'}, certbot's current certificate "
                                          f"is {on_disk}: nginx was not reloaded after the renewal")
    timer = lb.host.service("certbot.timer")
    assert timer.is_enabled and timer.is_running, f"{lb}: certbot.timer is not enabled and active: nothing renews"
    assert lb.sudo("test -x %s", "/etc/letsencrypt/renewal-hooks/deploy/talentsphere-nginx").rc == 0, (
        f"{lb}: certbot's deploy hook that reloads nginx after a renewal is missing")
