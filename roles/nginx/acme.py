"""The site's certificate from an ACME CA (`nginx_acme_directory`): certbot obtains it through nginx, renews it.

certbot (Debian's package) answers the HTTP-01 challenge with files in `ACME_WEBROOT`, which the site serves
on port 80; its own certbot.timer renews the certificate twice a day once it is due, and the deploy hook
(`RENEW_HOOK`) reloads nginx after a renewal. nginx reads the certificate through two links in its TLS
directory to certbot's current files. Until the first issuance they are a self-signed placeholder pair, so
that nginx (and its port-80 challenge location) can start before the CA has issued anything.

Each step is decided from facts, so a deploy with a certificate for the right name from the right CA issues
nothing and changes nothing: the CA's rate limits (Let's Encrypt: 5 certificates per name a week) are never
spent on a redeploy.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File, Link
from pyinfra.operations import server, systemd

from roles.common.files import put_managed
from roles.nginx import manifest
from tsdeploy.rolespec import Context


class AcmeCertificate(FactBase):
    """The ACME server and DNS names of certbot's certificate `cert_name`: {"server", "names"}, or None."""

    def command(self, cert_name: str) -> str:
        conf = shlex.quote(f"/etc/letsencrypt/renewal/{cert_name}.conf")
        cert = shlex.quote(f"/etc/letsencrypt/live/{cert_name}/cert.pem")
        return (f"if [ -f {conf} ] && [ -f {cert} ]; then sed -n 's/^server = //p' {conf}; "
                f"openssl x509 -noout -ext subjectAltName -in {cert} | grep -o 'DNS:[^, ]*'; else echo none; fi")

    def process(self, output: list[str]) -> dict | None:
        lines = [line.strip() for line in output if line.strip()]
        if not lines or lines == ["none"]:
            return None
        return {"server": lines[0], "names": sorted(line.removeprefix("DNS:") for line in lines[1:])}


def before_site(ctx: Context) -> None:
    """A self-signed placeholder pair where the site's certificate links will be, until the first issuance."""
    nginx = ctx["nginx"]
    cert, key = nginx["tls_cert_path"], nginx["tls_key_path"]
    if host.get_fact(Link, path=cert) or host.get_fact(File, path=cert):
        return
    q = shlex.quote
    server.shell(
        name=f"Create a self-signed placeholder certificate for {nginx['server_name']} until the ACME CA issues one",
        commands=[f"umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 "
                  f"-subj /CN={q(nginx['server_name'])} -keyout {q(key)} -out {q(cert)} 2>/dev/null && chmod 644 {q(cert)}"])


def after_site(ctx: Context) -> None:
    """Obtain the certificate when certbot has none for this name from this CA; link nginx to it; renewals."""
    nginx = ctx["nginx"]
    q = shlex.quote
    put_managed(ctx, manifest.RENEW_HOOK, name="Install certbot's deploy hook that reloads nginx after a renewal")
    trust = []
    if manifest.ACME_CA.applies_to(ctx):
        put_managed(ctx, manifest.ACME_CA, name=f"Write the CA bundle certbot trusts for {nginx['acme_directory']}")
        dropin = put_managed(ctx, manifest.CERTBOT_ENV,
                             name="Give certbot's renewals the ACME server's CA (REQUESTS_CA_BUNDLE)")
        systemd.daemon_reload(name="Reload systemd because certbot's drop-in changed", _if=dropin.did_change)
        trust = [f"REQUESTS_CA_BUNDLE={q(nginx['acme_ca_path'])}"]
    live = nginx["acme_live_dir"]
    links = {nginx["tls_cert_path"]: f"{live}/fullchain.pem", nginx["tls_key_path"]: f"{live}/privkey.pem"}
    link_commands = [f"ln -sfn {q(target)} {q(path)}" for path, target in links.items()]
    reload = "nginx -t -q && systemctl reload nginx"
    want = {"server": nginx["acme_directory"], "names": [nginx["server_name"]]}
    if host.get_fact(AcmeCertificate, cert_name=nginx["acme_cert_name"]) != want:
        contact = (f"--email {q(nginx['acme_email'])}" if nginx["acme_email"]
                   else "--register-unsafely-without-email")
        certonly = " ".join([
            "env", *trust, "certbot", "certonly", "--non-interactive", "--agree-tos", contact,
            "--server", q(nginx["acme_directory"]), "--webroot", "--webroot-path", q(nginx["acme_webroot"]),
            "--cert-name", q(nginx["acme_cert_name"]), "--domain", q(nginx["server_name"]),
            # Only reached when certbot holds no certificate for this name from this CA: a new CA or name
            # must be issued now, not at the old certificate's renewal date.
            "--force-renewal"])
        server.shell(name=f"Obtain the certificate for {nginx['server_name']} from {nginx['acme_directory']} "
                          "(certbot, HTTP-01 through nginx), then have nginx serve it",
                     commands=[" && ".join([certonly, *link_commands, reload])])
    elif any((host.get_fact(Link, path=path) or {}).get("link_target") != target for path, target in links.items()):
        server.shell(name="Point nginx at certbot's current certificate and reload it",
                     commands=[" && ".join([*link_commands, reload])])
    systemd.service(name="Renew the certificate when due (certbot.timer, twice a day)", service=manifest.CERTBOT_TIMER,
                    running=True, enabled=True)
