"""Changes made on the running Redis: its files applied live (CONFIG SET, ACL LOAD), restarts only when allowed.

Turning the append-only file on by editing redis.conf and restarting loses every key: Redis then loads the
(empty, new) AOF and ignores the RDB snapshot. The safe way is `CONFIG SET appendonly yes` on the live server,
which writes the AOF from memory, and only then the restart with the new file.
"""

from __future__ import annotations

import hashlib
import io
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, HiddenValue, StringCommand, operation
from pyinfra.api.exceptions import OperationError

from roles.common import restarts
from roles.redis import directives, manifest

#: Seconds to wait for the AOF rewrite that `CONFIG SET appendonly yes` starts.
AOF_REWRITE_TIMEOUT = 120

_SWITCH = """set -u
secret={secret}; trap 'rm -f "$secret"' EXIT
cli() {{ REDISCLI_AUTH="$(cat "$secret")" redis-cli --no-auth-warning --user {user} {where} "$@"; }}
# A fresh install still runs Debian's own configuration: no ACL users yet, the default user on loopback.
if ! cli PING 2>/dev/null | grep -qx PONG; then
  cli() {{ redis-cli {where} "$@"; }}
fi
state=$(cli CONFIG GET appendonly 2>&1) || true
case "$state" in
  *$'\\n'yes) exit 0 ;;
  *$'\\n'no) ;;
  *) echo "cannot ask Redis ({where}) whether the append-only file is on ($state): a restart with"\
 "appendonly yes would start empty; fix: start redis-server and check the admin user's password" >&2; exit 1 ;;
esac
cli CONFIG SET appendonly yes | grep -qx OK || {{ echo "CONFIG SET appendonly yes was refused" >&2; exit 1; }}
for _ in $(seq {timeout}); do
  info=$(cli INFO persistence)
  if grep -q '^aof_enabled:1' <<<"$info" && grep -q '^aof_rewrite_in_progress:0' <<<"$info" \\
     && grep -q '^aof_rewrite_scheduled:0' <<<"$info"; then
    grep -q '^aof_last_bgrewrite_status:ok' <<<"$info" && exit 0
    echo "Redis could not write its append-only file: $(grep aof_last_bgrewrite_status <<<"$info")" >&2; exit 1
  fi
  sleep 1
done
echo "Redis did not finish writing its append-only file within {timeout} s" >&2; exit 1
"""


# --- Reconciling the running Redis with redis.conf and the ACL file, restarting only by an explicit choice ---

#: The service's name in the pending-restart marker, and the role to name in `--allow-restart`.
MARKER_SERVICE, ROLE_NAME = "redis", "redis"
#: Written after the running Redis was reconciled with the files (applied, or the rest recorded as pending):
#: the sha256 of redis.conf, of the ACL file and of the TLS certificate and key. Its absence marks a first
#: configuration not yet completed.
APPLIED_STAMP = "/var/lib/tsdeploy/redis-applied"
#: Where Debian's own configuration serves Redis, the first port a Redis not yet configured is looked for on.
DEBIAN_PORT = 6379
#: Seconds to wait for Redis to answer after a restart.
RESTART_WAIT_SECONDS = 60

_PROBE = """secret={secret}; user={user}; socket={socket}
# The deploy's Redis answers on its unix socket; one not yet restarted with the deploy's redis.conf (Debian's
# own configuration, or a plain-text listener from before TLS) on a TCP port of its own.
where= answer=
if [ -S "$socket" ]; then
  answer=$(redis-cli -s "$socket" PING 2>&1)
  case "$answer" in PONG|NOAUTH*) where="-s $socket" ;; *) answer= ;; esac
fi
if [ -z "$where" ]; then
  ports="{port} $(ss -Hltnp 2>/dev/null | awk '/"redis-server"/ {{ n = split($4, a, ":"); print a[n] }}' | sort -u)"
  for port in $ports; do
    answer=$(timeout 5 redis-cli -h 127.0.0.1 -p "$port" PING 2>&1) || continue
    case "$answer" in PONG|NOAUTH*) where="-h 127.0.0.1 -p $port"; break ;; esac
    answer=
  done
fi
echo "where=$where"
auth() {{ REDISCLI_AUTH="$(cat "$secret" 2>/dev/null)" redis-cli --no-auth-warning --user "$user" $where "$@"; }}
# redis-cli goes on as the default user when AUTH fails: only ACL WHOAMI tells who answers.
if [ -z "$where" ]; then echo mode=down
elif [ "$(auth ACL WHOAMI 2>/dev/null)" = "$user" ]; then
  echo mode=admin
  for name in {names}; do printf 'config %s=%s\\n' "$name" "$(auth CONFIG GET "$name" | sed -n 2p)"; done
elif [ "$answer" = PONG ]; then echo mode=fresh
else echo mode=locked
fi
"""


class RedisLive(FactBase):
    """The running Redis as the admin user sees it: {"where", "mode", "config": {directive: CONFIG GET value}}.

    where: redis-cli's arguments that reach it (`-s <socket>`, or `-h 127.0.0.1 -p <port>` for a Redis not yet
    running the deploy's redis.conf), "" when nothing answers.

    mode: `admin` (the admin user authenticates: changes can be applied live), `fresh` (the default user
    answers without a password: Debian's own configuration, nothing of the deploy's applied yet), `locked`
    (Redis answers NOAUTH and refuses the vault's admin password: its ACL predates a password change) or
    `down`. The admin password is read from `secret_path` (0600), never from argv.
    """

    def command(self, socket: str, port: int, admin_user: str, secret_path: str, names: tuple[str, ...]) -> str:
        script = _PROBE.format(secret=shlex.quote(secret_path), user=shlex.quote(admin_user),
                               socket=shlex.quote(socket), port=int(port),
                               names=" ".join(shlex.quote(name) for name in names))
        return f"bash -c {shlex.quote(script)} || true"

    def process(self, output: list[str]) -> dict[str, object]:
        result: dict[str, object] = {"where": "", "mode": "down", "config": {}}
        config: dict[str, str] = {}
        for line in output:
            if line.startswith("config "):
                name, _, value = line[len("config "):].partition("=")
                config[name] = value
            elif line.startswith("where="):
                result["where"] = line[len("where="):].strip()
            elif line.startswith("mode="):
                result["mode"] = line[5:].strip()
        result["config"] = config
        return result


class Stamp(FactBase):
    """The content of the applied stamp, "" when it is absent."""

    def command(self) -> str:
        return f"cat {APPLIED_STAMP} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "".join(f"{line}\n" for line in output if line.strip())

    def default(self) -> str:
        return ""


def stamp_text(conf_text: str, acl_text: str, tls_digest: str) -> str:
    return (f"redis.conf {hashlib.sha256(conf_text.encode()).hexdigest()}\n"
            f"users.acl {hashlib.sha256(acl_text.encode()).hexdigest()}\n"
            f"tls {tls_digest}\n")


def tls_digest(cert_text: str, key_text: str) -> str:
    """What the stamp records of the certificate and key Redis serves: a changed one is loaded again."""
    return hashlib.sha256(f"{cert_text}\0{key_text}".encode()).hexdigest()


def _stamp_lines(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


_APPLY = """set -u
secret={secret}; trap '[ $? -eq 0 ] || rm -f "$secret"' EXIT
cli() {{ REDISCLI_AUTH="$(cat "$secret")" redis-cli --no-auth-warning --user {user} {where} "$@"; }}
set_one() {{
  out=$(cli CONFIG SET "$1" "$2" 2>&1)
  [ "$out" = OK ] || {{ echo "Redis refused CONFIG SET $1 $2: $out" >&2; exit 1; }}
  echo "$1 = $2 (CONFIG SET)"
}}
if [ {tls_reload} = yes ]; then
  # The same paths: Redis reads the certificate and key again.
  out=$(cli CONFIG SET tls-key-file {tls_key} tls-cert-file {tls_cert} 2>&1)
  [ "$out" = OK ] || {{ echo "Redis refused the new certificate {tls_cert} and key {tls_key}: $out" >&2; exit 1; }}
  echo "TLS: {tls_cert} loaded again"
fi
{sets}
if [ {acl_load} = yes ]; then
  out=$(cli ACL LOAD 2>&1)
  [ "$out" = OK ] || {{ echo "Redis refused the ACL file {aclfile} and keeps its previous users: $out" >&2; exit 1; }}
  echo "ACL LOAD: {aclfile} loaded"
fi
"""


def _restart_and_wait(socket: str) -> StringCommand:
    # Any answer (PONG, NOAUTH) means Redis is up again; the default user is off once our files are loaded.
    script = (f"systemctl restart {manifest.SERVICE} && for _ in $(seq {RESTART_WAIT_SECONDS * 2}); do "
              f"case \"$(redis-cli -s {shlex.quote(socket)} PING 2>&1)\" in PONG|NOAUTH*) exit 0 ;; esac; "
              f"sleep 0.5; done; echo '{manifest.SERVICE} did not answer on {socket} within "
              f"{RESTART_WAIT_SECONDS} s after its restart' >&2; exit 1")
    return StringCommand("sh", "-c", shlex.quote(script))


def _write_stamp(text: str) -> StringCommand:
    return StringCommand("sh", "-c", shlex.quote(
        f"install -d -m 0755 /var/lib/tsdeploy && printf %s {shlex.quote(text)} > {APPLIED_STAMP}.new && "
        f"chmod 0644 {APPLIED_STAMP}.new && mv -f {APPLIED_STAMP}.new {APPLIED_STAMP}"))


@operation()
def reconcile(conf_text: str, acl_text: str, tls_digest: str, socket: str, admin_user: str,
              admin_password: HiddenValue, temp_dir: str, allowed: bool):
    """Apply redis.conf and the ACL file to the running Redis; restart only when allowed or on a fresh install.

    + conf_text/acl_text: the files as the deploy wrote them (the ACL file's text only serves its checksum)
    + tls_digest: `tls_digest(certificate, key)` of the files written: a change has Redis load them again
    + socket: the unix socket of redis.conf (a Redis not yet running the deploy's file is found with `ss`)
    + admin_user/admin_password: the ACL admin user (the password travels in a 0600 file, never in argv)
    + temp_dir: the deploy user's 0700 upload dir
    + allowed: `roles.common.restarts.allowed("redis", redis_restart)`: TSDEPLOY_ALLOW_RESTART or the policy

    Updates: nothing when the stamp /var/lib/tsdeploy/redis-applied holds the files' checksums and no restart
    is pending. Otherwise, with the admin user: each directive whose CONFIG GET differs is CONFIG SET when
    Redis changes it at runtime (`directives.RUNTIME_SETTABLE`; appendonly yes through the live AOF switch),
    a changed ACL file is loaded with ACL LOAD (Redis checks the whole file and keeps its previous users
    when it refuses it: the deploy fails with its error); the other directives need a restart: made when
    allowed, else a warning names them and /var/lib/tsdeploy/pending-restart/redis records them. A Redis
    still running Debian's configuration (the default user answers without a password) serves nothing yet:
    it is restarted with the deploy's files whatever the policy. A Redis that refuses the vault's admin
    password (its ACL predates a password change) can load the new ACL file only with a restart.
    """
    conf_wanted = directives.wanted(conf_text)
    stamp = stamp_text(conf_text, acl_text, tls_digest)
    applied = host.get_fact(Stamp)
    marker = host.get_fact(restarts.Marker, service=MARKER_SERVICE)
    if applied == stamp:
        if marker is None:
            host.noop("the running Redis has the configuration and ACL file as written")
        elif marker["stale"]:
            yield restarts.clear(MARKER_SERVICE)
        elif allowed:
            yield _restart_and_wait(socket)
            yield restarts.clear(MARKER_SERVICE)
        else:
            restarts.warn_deferred(MARKER_SERVICE, ROLE_NAME, restarts.reason_of(str(marker["text"])).split("; "))
            host.noop(f"restart of {manifest.SERVICE} still deferred (recorded in "
                      f"{restarts.marker_path(MARKER_SERVICE)})")
        return

    path = f"{temp_dir}/tsdeploy-{host.name}-redis"
    yield FileUploadCommand(io.BytesIO(admin_password.unmask().encode()), path,
                            remote_temp_filename=host.get_temp_filename(path, temp_directory=temp_dir))
    live = host.get_fact(RedisLive, socket=socket, port=DEBIAN_PORT, admin_user=admin_user, secret_path=path,
                         names=tuple(conf_wanted))
    mode, where = live["mode"], str(live["where"]) or f"-s {shlex.quote(socket)}"
    switch = _SWITCH.format(secret=shlex.quote(path), user=shlex.quote(admin_user), where=where,
                            timeout=AOF_REWRITE_TIMEOUT)
    if mode == "down" and not host.state.is_executing:
        mode = "fresh"  # planning a first install: Redis is not even installed yet
    if mode == "down":
        yield StringCommand("rm", "-f", path)
        raise OperationError(f"Redis answers neither on {socket} nor on a TCP port of 127.0.0.1 (is "
                             f"{manifest.SERVICE} running? `journalctl -u {manifest.SERVICE}` says why not)")
    if mode == "fresh":
        if host.state.is_executing:
            logger.info(f"{host.print_prefix}Redis still runs Debian's default configuration (no ACL users): "
                        "nothing is served yet, so it restarts with the deploy's files")
        if conf_wanted.get("appendonly") == "yes":
            yield StringCommand("bash", "-c", shlex.quote(switch))
        yield StringCommand("rm", "-f", path)
        yield _restart_and_wait(socket)
        yield restarts.clear(MARKER_SERVICE)
        yield _write_stamp(stamp)
        return

    needs_restart: list[str] = []
    if mode == "locked":
        yield StringCommand("rm", "-f", path)
        needs_restart.append(f"aclfile: the running Redis refuses the vault's password for {admin_user} (its ACL "
                             "predates a password change), so it loads the new ACL file only at a restart")
    else:
        settable, restart_only = directives.diff(conf_wanted, dict(live["config"]))  # type: ignore[arg-type]
        aof_on = any(change.name == "appendonly" and change.new == "yes" for change in settable)
        sets = "\n".join(f"set_one {shlex.quote(change.name)} {shlex.quote(change.new)}" for change in settable
                         if not (change.name == "appendonly" and change.new == "yes"))
        before, now = _stamp_lines(applied), _stamp_lines(stamp)
        acl_changed = before.get("users.acl") != now["users.acl"]
        tls_files_set = any(change.name in ("tls-cert-file", "tls-key-file") for change in settable)
        tls_reload = before.get("tls") != now["tls"] and not tls_files_set
        aclfile_moves = any(change.name == "aclfile" for change in restart_only)
        if host.state.is_executing:
            for change in settable:
                logger.info(f"{host.print_prefix}{change.line('applied with CONFIG SET')}")
        yield StringCommand("bash", "-c", shlex.quote(_APPLY.format(
            secret=shlex.quote(path), user=shlex.quote(admin_user), where=where, sets=sets or ":",
            tls_reload="yes" if tls_reload else "no", tls_cert=shlex.quote(conf_wanted.get("tls-cert-file", "")),
            tls_key=shlex.quote(conf_wanted.get("tls-key-file", "")),
            acl_load="yes" if acl_changed and not aclfile_moves else "no",
            aclfile=shlex.quote(conf_wanted.get("aclfile", "")))))
        if aof_on:
            yield StringCommand("bash", "-c", shlex.quote(switch))  # removes the password file when done
        yield StringCommand("rm", "-f", path)
        needs_restart += [change.line(f"needs a restart: {directives.restart_why(change.name)}")
                          for change in restart_only]

    if needs_restart and allowed:
        if host.state.is_executing:
            logger.info(f"{host.print_prefix}restarting {manifest.SERVICE} (allowed): {'; '.join(needs_restart)}")
        yield _restart_and_wait(socket)
        yield restarts.clear(MARKER_SERVICE)
    elif needs_restart:
        restarts.warn_deferred(MARKER_SERVICE, ROLE_NAME, needs_restart)
        yield from restarts.record(MARKER_SERVICE, restarts.marker_text(manifest.SERVICE, ROLE_NAME, needs_restart),
                                   marker)
    elif marker is not None:
        yield restarts.clear(MARKER_SERVICE)
    yield _write_stamp(stamp)
