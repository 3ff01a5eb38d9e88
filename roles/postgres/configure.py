"""The cluster's configuration: TLS files, tuned conf.d drop-in, pg_hba, file modes; reload or restart.

The four files are one set, checked together as candidates before any of them replaces its live file
(`put_checked` with `postgres_check`: `postgres -C` on a scratch copy of the config dir, `pg_hba_file_rules` of
a throwaway single-user cluster, openssl on the TLS pair); a set PostgreSQL would reject never lands.
Reload when a file landed, and wait until the postmaster has re-read its files (a reload is only a SIGHUP).
When a setting in the files needs a restart (checked on every deploy from PostgreSQL's own views, see
`sql.restart_if_settings_need_it`), restart only when allowed (TSDEPLOY_ALLOW_RESTART or `postgres_restart:
allow`, after `postgres -C` checked the files); else warn and record it (roles/common/restarts.py).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping

from pyinfra import host
from pyinfra.operations import server

from roles.common import restarts
from roles.common.files import Check, put_checked, put_path
from roles.postgres import manifest, sql
from tsdeploy.rolespec import Context

#: The cluster's config dir on Debian 12 (the check's default root; the role passes its own).
ROOT = "/etc/postgresql/15/main"
#: The binaries of that version.
BIN_DIR = "/usr/lib/postgresql/15/bin"

#: How long the reload waits for the postmaster to re-read its files (pg_conf_load_time advances).
RELOAD_TIMEOUT_SECONDS = 60


def _reload_and_wait(service: str) -> str:
    """A shell command: reload the cluster, then wait until pg_conf_load_time() shows the files were re-read."""
    load_time = f"{sql.PSQL} -d postgres -c 'SELECT pg_conf_load_time()'"
    return (f"before=$({load_time}) && systemctl reload {service} && "
            f"for _ in $(seq {RELOAD_TIMEOUT_SECONDS * 2}); do "
            f"[ \"$({load_time})\" != \"$before\" ] && exit 0; sleep 0.5; done; "
            f"echo '{service} did not re-read its configuration within {RELOAD_TIMEOUT_SECONDS} s' >&2; exit 1")


#: What the throwaway cluster is asked: each line of the hba file PostgreSQL's parser rejects, as its reload
#: would name it, then a marker that the query ran at all (a single-user backend exits 0 even after an error).
HBA_ERRORS_SQL = ("COPY (SELECT format('%s (line %s of configuration file \"%s\")', error, line_number, "
                  "current_setting('hba_file')) FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number) "
                  "TO STDOUT; COPY (SELECT 'tsdeploy-hba-checked') TO STDOUT;")


def _pattern(text: str) -> str:
    """`text` as a literal basic regular expression for sed's `s|...|...|`."""
    return "".join("\\" + char if char in "\\.*[]^$|" else char for char in text)


def _replacement(text: str) -> str:
    """`text` as a literal replacement for sed's `s|...|...|` inside a double-quoted shell word."""
    return "".join("\\" + char if char in "&|" else char for char in text)


def postgres_check(*, root: str = ROOT, bin_dir: str = BIN_DIR, user: str = "postgres") -> Check:
    """PostgreSQL's own checks of the configuration as it will be, on scratch copies, never on the live cluster.

    The script copies `root` (the cluster's config dir with conf.d) into a 0700 temp dir owned by `user`, puts
    each candidate at its relative place and points absolute paths into `root` at the copy. Then, as `user`:
    + `postgres -C ... --config-file=<copy>/postgresql.conf` parses every file as a start would (postgresql.conf,
      conf.d, the data dir's postgresql.auto.conf, read only) and rejects a bad value or an unknown setting;
      it also names the files the checks below read (`hba_file`, `ssl`, `ssl_cert_file`, `ssl_key_file`).
    + with `ssl` on: openssl parses the certificate and the key and checks that the key is the certificate's
      (`pkcs12 -export`, the X509_check_private_key PostgreSQL's reload runs: "key values mismatch").
    + pg_hba: `initdb` of a throwaway cluster in the temp dir and `postgres --single` on it with
      `hba_file=<the copy's hba file> ssl=on` reads `pg_hba_file_rules`: PostgreSQL's own parser, every bad
      line with its number and error. ssl=on because the live server has it (the role's drop-in) and with it
      off each `hostssl` line is flagged; nothing listens, the live cluster is never contacted.
    Files outside `root` are read where they live (a changed file there is refused: it would not be copied).
    Messages name the live paths again; the temp dir (with the throwaway cluster) is always removed.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        postgres = f"runuser -u {q(user)} -- {q(bin_dir)}/postgres"
        conf = '"$tmp/conf"'
        lines = ['tmp=$(mktemp -d) || exit 1', "trap 'rm -rf \"$tmp\"' EXIT", 'cd "$tmp" || exit 1',
                 f'mkdir {conf} && cp -a {q(root)}/. {conf}/ || exit 1',
                 # A leftover candidate is not a config file of its own.
                 f'find {conf} -name "*.tsdeploy-candidate" -exec rm -f {{}} +']
        for dest, path in paths.items():
            if dest.startswith(root + "/"):
                copy = f'{conf}/' + q(dest[len(root) + 1:])
                lines.append(f'mkdir -p "$(dirname {copy})" && cp -p {q(path)} {copy} || exit 1')
            elif path != dest:
                raise ValueError(f"postgres_check: {dest} is not in {root}, the config dir it checks")
        lines += [
            # Absolute paths into the live config dir (hba_file, ssl_cert_file, ...) read the copy.
            f'grep -rlZ -e {q(root + "/")} {conf} | xargs -0 -r sed -i "s|{_pattern(root)}/|$tmp/conf/|g" '
            '|| exit 1',
            f'chown -R {q(user)}: "$tmp" || exit 1',
            'show() { [ -z "$1" ] || printf \'%s\\n\' "$1" | sed "s|$tmp/conf/|'
            + _replacement(root) + '/|g"; }',
            f'setting() {{ {postgres} -C "$1" -c log_line_prefix= --config-file="$tmp/conf/postgresql.conf"; }}',
            # The settings: every file parsed, every value checked (a start would fail the same way).
            'if ! out=$(setting hba_file 2>&1); then show "$out"; exit 1; fi',
            'hba=$out; ssl=$(setting ssl) && cert=$(setting ssl_cert_file) && key=$(setting ssl_key_file) '
            '&& data=$(setting data_directory) || exit 1',
            # The TLS pair, read as the server reads it (relative paths are relative to the data dir).
            'if [ "$ssl" = on ]; then',
            '  case "$cert" in /*) ;; *) cert="$data/$cert";; esac',
            '  case "$key" in /*) ;; *) key="$data/$key";; esac',
            f'  as_user() {{ runuser -u {q(user)} -- "$@"; }}',
            '  if ! out=$(as_user openssl x509 -noout -in "$cert" 2>&1); then',
            '    show "ssl_cert_file $cert: not a readable PEM certificate: $out"; exit 1; fi',
            '  if ! out=$(as_user openssl pkey -noout -passin pass: -in "$key" 2>&1); then',
            '    show "ssl_key_file $key: not a readable unencrypted PEM key: $out"; exit 1; fi',
            '  if ! out=$(as_user openssl pkcs12 -export -passin pass: -passout pass: -in "$cert" -inkey "$key" '
            '-out /dev/null 2>&1); then',
            '    show "ssl_key_file $key is not the key of ssl_cert_file $cert: $out"; exit 1; fi',
            'fi',
            # pg_hba: PostgreSQL's own parser, in a throwaway cluster that never listens.
            f'if ! out=$(runuser -u {q(user)} -- {q(bin_dir)}/initdb -D "$tmp/pgdata" -U {q(user)} -A trust '
            '-E UTF8 --locale=C --no-sync --no-instructions 2>&1); then',
            '  show "could not create a throwaway cluster to check $hba: $out"; exit 1; fi',
            f'rules={q(HBA_ERRORS_SQL)}',
            f'out=$(printf \'%s\\n\' "$rules" | {postgres} --single -D "$tmp/pgdata" -c hba_file="$hba" -c ssl=on '
            '-c log_min_messages=fatal -c log_line_prefix= postgres 2>&1)',
            'case "$out" in *tsdeploy-hba-checked*) ;; *) show "could not read the rules of $hba: $out"; exit 1;; esac',
            'errors=$(printf \'%s\\n\' "$out" | sed -n "s/^\\(backend> \\)*\\(.* (line [0-9]* of configuration '
            'file .*)\\)\\$/\\2/p")',
            'if [ -n "$errors" ]; then show "$errors"; exit 1; fi',
        ]
        return "\n".join(lines)

    return Check(tool="postgres -C, pg_hba_file_rules and openssl", script=script,
                 hint="correct the file the message names (templates/postgres/*.j2, or the PEM files tls_cert_file "
                      "and tls_key_file point at) and deploy again")


def apply(ctx: Context) -> None:
    pg = ctx["postgres"]
    conf_dir, service = pg["conf_dir"], pg["service"]
    for path in manifest.CLUSTER_PATHS:
        put_path(ctx, path)
    # The TLS pair, the drop-in and pg_hba are one set: a drop-in naming a new certificate is valid only with it.
    landed = put_checked(ctx, [manifest.SERVER_CERT, manifest.SERVER_KEY, manifest.SETTINGS, manifest.PG_HBA],
                         check=postgres_check(root=conf_dir, bin_dir=posixpath.join(
                             "/usr/lib/postgresql", str(pg["version"]), "bin")),
                         name="Install the inventory's TLS certificate and key (0600) for PostgreSQL, the tuned, "
                              "logged, TLS-only settings drop-in and a pg_hba.conf allowing only local peer and "
                              "hostssl scram-sha-256 from app hosts")
    server.shell(name="Reload PostgreSQL because its configuration changed (and wait until it has)",
                 commands=[_reload_and_wait(service)], _if=landed.did_change)
    # A restart only by an explicit choice (TSDEPLOY_ALLOW_RESTART / postgres_restart: allow); else recorded.
    # A cluster without the app's database serves nobody yet (a first install on Debian's defaults): its
    # first configuration needs a restart (listen_addresses, ssl, shared_buffers) and costs no request.
    first = not host.get_fact(sql.PsqlQuery, database="postgres",
                              query=f"SELECT 1 FROM pg_database WHERE datname = '{pg['db_name']}'")
    allowed = first or restarts.allowed("postgres", restarts.policy("postgres_restart"))
    sql.restart_if_settings_need_it(
        name=("Restart PostgreSQL for its first configuration (no app database yet)" if first else
              "Restart PostgreSQL if a setting in its files needs a restart (allowed)" if allowed else
              "Restart PostgreSQL if a setting needs it: not allowed, so record it as pending instead"),
        service=service, postgres_bin=f"/usr/lib/postgresql/{pg['version']}/bin/postgres",
        config_file=f"{conf_dir}/postgresql.conf", allowed=allowed,
        reasons={item["name"]: item["reason"] for item in pg["settings"]})
