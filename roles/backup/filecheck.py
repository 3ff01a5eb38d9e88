"""The one check of pgBackRest's files before they land, on the db host and on the backup host alike.

`pgbackrest --config=<candidate> ... help <command>` parses the file as each command that reads it will and
fails on a bad value ("'2XB' is not valid for 'archive-push-queue-max' option"); pgBackRest only warns about an
option it does not know, so any WARN or ERROR line is a rejection too. With a TLS transport (`tls` = the live
paths of "ca", "cert" and "key"), openssl checks what the peer will: the certificate is signed by the CA
(`openssl verify`), the key is its key (`openssl pkcs12 -export`: "key values mismatch"), its CN is the
inventory's host name (the peer's `tls-server-auth` names it) and its extended key usage, when it has one,
allows both server and client authentication (without clientAuth the peer refuses it: "sslv3 alert
unsupported certificate"). Everything runs as the user pgBackRest runs as, on the candidates' paths.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from roles.common.files import Check

#: The extended key usages pgBackRest's TLS peers need (OpenSSL's names): each host serves (its TLS server) and
#: is a client (it connects to the other host's server).
NEEDED_USAGES = ("TLS Web Server Authentication", "TLS Web Client Authentication")


def pgbackrest_files_check(*, host_name: str, conf: str, commands: Sequence[str], tls: Mapping[str, str] | None,
                           peer: str, template: str, user: str) -> Check:
    """The check of `conf` (and the TLS files) as the `commands` (`help` arguments) will read them.

    `peer` names the host whose `tls-server-auth` allows this host's CN; `template` is the file to correct.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        as_user = f"runuser -u {q(user)} --"
        lines = [
            f"conf={q(paths[conf])}",
            'parse() { out=$(' + as_user + ' pgbackrest --config="$conf" "$@" 2>&1 >/dev/null); rc=$?; '
            'if [ "$rc" -ne 0 ] || printf \'%s\\n\' "$out" | grep -q -e "^WARN:" -e "^ERROR:"; then '
            f'printf \'%s\\n\' "{conf}: $out"; exit 1; fi; }}',
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
                f'that {peer}\'s tls-server-auth allows"; exit 1; fi',
                'usages=$(openssl x509 -noout -ext extendedKeyUsage -in "$cert" 2>/dev/null | sed "1d; s/^ *//")',
            ]
            for usage in NEEDED_USAGES:
                lines += [f'if [ -n "$usages" ] && ! printf \'%s\\n\' "$usages" | grep -q {q(usage)}; then',
                          f'  printf \'%s\\n\' "{cert}: its extendedKeyUsage ($usages) lacks {usage}, which '
                          'pgBackRest\'s TLS peer requires"; exit 1; fi']
        return "\n".join(lines)

    return Check(tool="pgbackrest help" + (" and openssl" if tls else ""), script=script,
                 hint=f"correct {template} or the backup_* variable the message names"
                      + (", or issue the host's certificate (tls_cert_file, tls_key_file) from tls_ca_cert_file's "
                         "CA with CN = the inventory host name and extendedKeyUsage = serverAuth, clientAuth"
                         if tls else "") + "; deploy again")
