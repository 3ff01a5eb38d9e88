"""pgBackRest's configuration, its TLS files and server (split), the backup and drill units, timers and script.

pgbackrest.conf (and in split the inventory's CA, this host's certificate and key) are one set, checked as
candidates before they land (`repository_check`): a file pgBackRest cannot parse, or a certificate the db
host's TLS server would refuse, never replaces working files. A changed unit reloads systemd; the timers are
enabled and started. With the db host elsewhere (split), Debian's `pgbackrest.service` (`pgbackrest server`,
as postgres) runs at boot and is restarted when its configuration or TLS files landed: it reads them only at
start. On the db host itself (single) there is no network transport: no TLS files, no server.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

from roles.backup import manifest
from roles.backup.context import RUN_AS
from roles.common.files import Check, put_checked, put_managed, put_path
from roles.common.peers import resolve_peer
from tsdeploy.rolespec import Context

#: The extended key usages pgBackRest's TLS peers need (OpenSSL's names): this host serves (the db host pushes
#: its WAL to its server) and is a client (backups read the cluster through the db host's server).
NEEDED_USAGES = ("TLS Web Server Authentication", "TLS Web Client Authentication")


def repository_check(*, host_name: str, stanza: str, conf: str, tls: Mapping[str, str] | None = None,
                     user: str = RUN_AS) -> Check:
    """pgBackRest's (and in split openssl's) checks of the repository host's files as they will be, as `user`.

    + `pgbackrest --config=<candidate> --stanza=S help backup` (and `help server` in split, `help archive-push`
      in single, where PostgreSQL's archive_command reads this file) parse the file as those commands will and
      fail on a bad value; any WARN (an option pgBackRest does not know) fails too.
    + split (`tls` = {"ca", "cert", "key"} live paths): the certificate is signed by the CA, the key is its key,
      its CN is the inventory's host name (what the db host's `tls-server-auth` allows) and its extended key
      usage, when it has one, allows both server and client authentication.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        as_user = f"runuser -u {q(user)} --"
        commands = ["help server"] if tls else [f"--stanza={q(stanza)} help archive-push"]
        lines = [
            f"conf={q(paths[conf])}",
            'parse() { out=$(' + as_user + ' pgbackrest --config="$conf" "$@" 2>&1 >/dev/null); rc=$?; '
            'if [ "$rc" -ne 0 ] || printf \'%s\\n\' "$out" | grep -q -e "^WARN:" -e "^ERROR:"; then '
            f'printf \'%s\\n\' "{conf}: $out"; exit 1; fi; }}',
            f"parse --stanza={q(stanza)} help backup",
            *(f"parse {command}" for command in commands),
        ]
        if tls:
            ca, cert, key = tls["ca"], tls["cert"], tls["key"]
            lines += [
                f"ca={q(paths[ca])}; cert={q(paths[cert])}; key={q(paths[key])}",
                f'if ! out=$({as_user} openssl verify -CAfile "$ca" "$cert" 2>&1); then',
                f'  printf \'%s\\n\' "{cert} is not signed by {ca}: $out"; exit 1; fi',
                f'if ! out=$({as_user} openssl pkcs12 -export -passin pass: -passout pass: -in "$cert" -inkey "$key" '
                '-out /dev/null 2>&1); then',
                f'  printf \'%s\\n\' "{key} is not the key of {cert}: $out"; exit 1; fi',
                'cn=$(openssl x509 -noout -subject -nameopt multiline -in "$cert" '
                '| sed -n "s/^ *commonName *= *//p")',
                f'if [ "$cn" != {q(host_name)} ]; then',
                f'  printf \'%s\\n\' "{cert}: its CN is \'$cn\', not this host\'s inventory name \'{host_name}\' '
                'that the db host\'s tls-server-auth allows"; exit 1; fi',
                'usages=$(openssl x509 -noout -ext extendedKeyUsage -in "$cert" 2>/dev/null | sed "1d; s/^ *//")',
            ]
            for usage in NEEDED_USAGES:
                lines += [f'if [ -n "$usages" ] && ! printf \'%s\\n\' "$usages" | grep -q {q(usage)}; then',
                          f'  printf \'%s\\n\' "{cert}: its extendedKeyUsage ($usages) lacks {usage}, which '
                          'pgBackRest\'s TLS peer requires"; exit 1; fi']
        return "\n".join(lines)

    return Check(tool="pgbackrest help" + (" and openssl" if tls else ""), script=script,
                 hint="correct templates/backup/pgbackrest.conf.j2 or the backup_* variable the message names"
                      + (", or issue the host's certificate (tls_cert_file, tls_key_file) from tls_ca_cert_file's "
                         "CA with CN = the inventory host name and extendedKeyUsage = serverAuth, clientAuth"
                         if tls else "") + "; deploy again")


def apply(ctx: Context) -> None:
    backup = ctx["backup"]
    for path in manifest.POST_PACKAGE_PATHS:
        put_path(ctx, path)
    remote = manifest.remote(ctx)
    if remote:
        resolve_peer(backup["db_host"], backup["db_address"], "pgBackRest reaches it by its certificate's name")
    items = [manifest.CONF, *(item for item in manifest.TLS_FILES if item.applies_to(ctx))]
    tls = ({"ca": manifest.TLS_CA.dest(ctx), "cert": manifest.TLS_CERT.dest(ctx), "key": manifest.TLS_KEY.dest(ctx)}
           if remote else None)
    where = (f"the repository, {backup['db_host']}'s cluster over mutual TLS and a TLS server for its WAL, with the "
             "inventory's CA, certificate and key (0600)" if remote else
             "a local repository and the archive settings of the cluster on this host")
    landed = put_checked(
        ctx, items, check=repository_check(host_name=ctx["host"]["name"], stanza=backup["stanza"],
                                           conf=manifest.CONF.dest(ctx), tls=tls),
        name=f"Write pgbackrest.conf: {where}; encrypted, retention {backup['retention_full']} full / "
             f"{backup['retention_diff']} differential")
    units = [put_managed(ctx, item, name=f"Write {item.dest(ctx)}") for item in manifest.UNITS]
    put_managed(ctx, manifest.DRILL, name=f"Install the restore drill script {backup['drill_script']}")
    systemd.daemon_reload(name="Reload systemd because a backup or drill unit changed", _if=any_changed(*units))
    for timer in manifest.TIMERS:
        systemd.service(name=f"Run {timer} at boot and now", service=timer, running=True, enabled=True)
    if remote:
        service = backup["server_service"]
        # Only a running server restarts here; a stopped one (a first install) is started below.
        systemd.service(name=f"Restart pgBackRest's TLS server ({service}) because its configuration or TLS files "
                             "changed", service=service, restarted=True, _if=landed.did_change)
        systemd.service(name=f"Run pgBackRest's TLS server ({service}) at boot, for {backup['db_host']} only",
                        service=service, running=True, enabled=True)
