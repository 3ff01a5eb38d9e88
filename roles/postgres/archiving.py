"""pgBackRest on a db host whose repository is on another host: its configuration, TLS files and TLS server.

PostgreSQL's archive_command (the settings drop-in, `configure.py`) runs `pgbackrest archive-push`, which reads
/etc/pgbackrest/pgbackrest.conf: the repository host, reached over pgBackRest's TLS protocol with the
inventory's CA and this host's certificate. The same file configures this host's TLS server (Debian's
`pgbackrest.service`, `pgbackrest server` as postgres), through which the backup host reads the cluster for
backups and checks. The four files are one set, checked as candidates before they land (`pgbackrest_check`):
a server that cannot start, or a certificate the peer would refuse, never replaces working files.

The directories are created on every db host (see manifest.py). Without a backup host nothing else is done;
on a db host that is also the backup host the backup role writes the one local configuration and no TLS
server runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

from roles.common.files import Check, put_checked, put_managed, put_path
from roles.common.peers import resolve_peer
from roles.postgres import manifest
from tsdeploy.rolespec import Context

#: The extended key usages pgBackRest's TLS peers need: this host serves (the backup host connects to its
#: server) and is a client (archive-push connects to the backup host's server). OpenSSL's names for them.
NEEDED_USAGES = ("TLS Web Server Authentication", "TLS Web Client Authentication")


def pgbackrest_check(*, host_name: str, stanza: str, conf: str, ca: str, cert: str, key: str,
                     user: str = "postgres") -> Check:
    """pgBackRest's and openssl's checks of the db-side files as they will be, read as `user`.

    + `pgbackrest --config=<candidate> --stanza=S help archive-push` and `help server` parse the file as the
      archive_command and the TLS server will, and fail on a bad value ("'2XB' is not valid for
      'archive-push-queue-max' option"); a warning (an option pgBackRest does not know) fails too.
    + The certificate is signed by the CA (`openssl verify`, as the peer verifies it), the key is its key
      (`openssl pkcs12 -export`: "key values mismatch"), its CN is the inventory's host name (the backup
      host's `tls-server-auth` names it) and its extended key usage, when it has one, allows both server and
      client authentication (without clientAuth the peer refuses it: "sslv3 alert unsupported certificate").
    The file names are the live paths (conf, ca, cert, key); the script reads what `paths` maps them to.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        as_user = f"runuser -u {q(user)} --"
        lines = [
            f"conf={q(paths[conf])}; ca={q(paths[ca])}; cert={q(paths[cert])}; key={q(paths[key])}",
            # pgBackRest exits 0 with a WARN for an unknown option: any WARN or ERROR line is a rejection.
            'parse() { out=$(' + as_user + ' pgbackrest --config="$conf" "$@" 2>&1 >/dev/null); rc=$?; '
            'if [ "$rc" -ne 0 ] || printf \'%s\\n\' "$out" | grep -q -e "^WARN:" -e "^ERROR:"; then '
            f'printf \'%s\\n\' "{conf}: $out"; exit 1; fi; }}',
            f'parse --stanza={q(stanza)} help archive-push',
            'parse help server',
            f'if ! out=$({as_user} openssl verify -CAfile "$ca" "$cert" 2>&1); then',
            f'  printf \'%s\\n\' "{cert} is not signed by {ca}: $out"; exit 1; fi',
            f'if ! out=$({as_user} openssl pkcs12 -export -passin pass: -passout pass: -in "$cert" -inkey "$key" '
            '-out /dev/null 2>&1); then',
            f'  printf \'%s\\n\' "{key} is not the key of {cert}: $out"; exit 1; fi',
            'cn=$(openssl x509 -noout -subject -nameopt multiline -in "$cert" '
            '| sed -n "s/^ *commonName *= *//p")',
            f'if [ "$cn" != {q(host_name)} ]; then',
            f'  printf \'%s\\n\' "{cert}: its CN is \'$cn\', not this host\'s inventory name \'{host_name}\' '
            'that the backup host\'s tls-server-auth allows"; exit 1; fi',
            'usages=$(openssl x509 -noout -ext extendedKeyUsage -in "$cert" 2>/dev/null | sed "1d; s/^ *//")',
        ]
        for usage in NEEDED_USAGES:
            lines += [f'if [ -n "$usages" ] && ! printf \'%s\\n\' "$usages" | grep -q {q(usage)}; then',
                      f'  printf \'%s\\n\' "{cert}: its extendedKeyUsage ($usages) lacks {usage}, which '
                      'pgBackRest\'s TLS peer requires"; exit 1; fi']
        return "\n".join(lines)

    return Check(tool="pgbackrest help and openssl", script=script,
                 hint="correct templates/postgres/pgbackrest.conf.j2 or the backup_* variable the message names, or "
                      "issue the host's certificate (tls_cert_file, tls_key_file) from tls_ca_cert_file's CA with "
                      "CN = the inventory host name and extendedKeyUsage = serverAuth, clientAuth; deploy again")


def wal_switch(ctx: Context) -> None:
    """The timer that closes the WAL segment every backup_archive_timeout seconds (when archiving is on)."""
    archive = ctx["postgres"]["archiving"]
    if archive is None:
        return
    units = [put_managed(ctx, item, name=f"Write {item.dest(ctx)}") for item in manifest.WAL_SWITCH_UNITS]
    systemd.daemon_reload(name="Reload systemd because the WAL switch units changed",
                          _if=any_changed(*units))
    systemd.service(name=f"Run {manifest.WAL_SWITCH} (a WAL segment with writes is archived within "
                         f"{archive['archive_timeout']} s)", service=manifest.WAL_SWITCH, running=True, enabled=True)


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    for path in manifest.PGBACKREST_PATHS:
        put_path(ctx, path)
    if not manifest.remote_repository(ctx):
        return
    archive = pg["archiving"]
    resolve_peer(archive["repo_host"], archive["repo_address"], "pgBackRest reaches it by its certificate's name")
    live = {item.key: item.dest(ctx) for item in manifest.PGBACKREST_FILES}
    landed = put_checked(
        ctx, manifest.PGBACKREST_FILES,
        check=pgbackrest_check(host_name=ctx["host"]["name"], stanza=archive["stanza"],
                               conf=live[manifest.PGBACKREST.key], ca=live[manifest.PGBACKREST_CA.key],
                               cert=live[manifest.PGBACKREST_CERT.key], key=live[manifest.PGBACKREST_KEY.key]),
        name=f"Write pgBackRest's configuration (WAL to the repository on {archive['repo_host']}, TLS server for it) "
             "and the inventory's CA, certificate and key (0600) it authenticates with")
    service = archive["service"]
    # Only a running server restarts here; a stopped one (a first install) is started below.
    systemd.service(name=f"Restart pgBackRest's TLS server ({service}) because its configuration or TLS files "
                         "changed", service=service, restarted=True, _if=landed.did_change)
    systemd.service(name=f"Run pgBackRest's TLS server ({service}) at boot, for {archive['repo_host']} only",
                    service=service, running=True, enabled=True)
