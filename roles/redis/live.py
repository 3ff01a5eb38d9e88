"""Changes made on the running Redis before its configuration file is replaced and it restarts.

Turning the append-only file on by editing redis.conf and restarting loses every key: Redis then loads the
(empty, new) AOF and ignores the RDB snapshot. The safe way is `CONFIG SET appendonly yes` on the live server,
which writes the AOF from memory, and only then the restart with the new file.
"""

from __future__ import annotations

import io
import shlex

from pyinfra import host
from pyinfra.api import FileUploadCommand, HiddenValue, StringCommand, operation

#: Seconds to wait for the AOF rewrite that `CONFIG SET appendonly yes` starts.
AOF_REWRITE_TIMEOUT = 120

_SWITCH = """set -u
secret={secret}; trap 'rm -f "$secret"' EXIT
cli() {{ REDISCLI_AUTH="$(cat "$secret")" redis-cli --no-auth-warning --user {user} -h 127.0.0.1 -p {port} "$@"; }}
# A fresh install still runs Debian's own configuration: no ACL users yet, the default user on loopback.
if ! cli PING 2>/dev/null | grep -qx PONG; then
  cli() {{ redis-cli -h 127.0.0.1 -p {port} "$@"; }}
fi
state=$(cli CONFIG GET appendonly 2>&1) || true
case "$state" in
  *$'\\n'yes) exit 0 ;;
  *$'\\n'no) ;;
  *) echo "cannot ask Redis on port {port} whether the append-only file is on ($state): a restart with"\
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


@operation()
def enable_aof_before_restart(port: int, admin_user: str, admin_password: HiddenValue, temp_dir: str):
    """Turn the append-only file on in the running Redis and wait until it is written from memory.

    + port: Redis's port on loopback
    + admin_user/admin_password: the ACL admin user (the password travels in a 0600 file, never in argv)
    + temp_dir: the deploy user's 0700 upload dir

    Updates: nothing when the running Redis already keeps an AOF.
    """
    path = f"{temp_dir}/tsdeploy-{host.name}-redis"
    script = _SWITCH.format(secret=shlex.quote(path), user=shlex.quote(admin_user), port=int(port),
                            timeout=AOF_REWRITE_TIMEOUT)
    yield FileUploadCommand(io.BytesIO(admin_password.unmask().encode()), path,
                            remote_temp_filename=host.get_temp_filename(path, temp_directory=temp_dir))
    yield StringCommand("bash", "-c", shlex.quote(script))
