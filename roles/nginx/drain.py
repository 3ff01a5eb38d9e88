"""Take app hosts out of nginx's rotation for a rolling deploy, or put them all back, without dropping a request.

The site is rendered with the drained upstream servers marked `down`, checked as a candidate with `nginx -t`
before it replaces the live file, and nginx is reloaded: new workers stop sending requests to the drained
servers at once, while the old workers finish the requests they hold and exit. The operation returns only
when every old worker has exited, so no request is in flight to a drained host any more.

A deploy killed while a host is drained leaves it out of rotation until the next deploy, whose first phase
renders the site with every app host in it.
"""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, deploy, operation

from roles.common.files import put_checked
from roles.nginx import ROLE, manifest
from roles.nginx.configure import check_site
from roles.runtime import host_context

#: Waits until the nginx workers that ran before the reload have exited (they finish their requests first).
_RELOAD_AND_WAIT = """set -u
pid=$(cat /run/nginx.pid)
old=$(pgrep -P "$pid" -f 'nginx: worker process' | tr '\\n' ' ')
systemctl reload nginx
for _ in $(seq {ticks}); do
  alive=""
  for worker in $old; do kill -0 "$worker" 2>/dev/null && alive="$alive $worker"; done
  [ -z "$alive" ] && exit 0
  sleep 0.2
done
echo "nginx workers$alive still hold requests {seconds} s after the reload; the drained hosts may still get them" >&2
exit 1
"""


@operation()
def reload_and_wait(seconds: int):
    """Reload nginx and wait until its previous workers have finished their requests and exited.

    + seconds: how long to wait (the longest a proxied request may take, plus a margin)
    """
    yield StringCommand("bash", "-c", shlex.quote(_RELOAD_AND_WAIT.format(ticks=seconds * 5, seconds=seconds)))


@deploy("Rolling deploy: nginx rotation", data_defaults=ROLE.defaults)
def rotate(drained: list[str]) -> None:
    """Render the site with `drained` (upstream "address:port" entries) out of rotation and apply it."""
    ctx = host_context()
    nginx = {**ctx["nginx"], "drained": list(drained)}
    view = {**ctx, "nginx": nginx}
    what = f"{', '.join(drained)} out of rotation" if drained else "every app host in rotation"
    site = put_checked(view, [manifest.SITE], check=check_site, name=f"Write the site with {what} (checked with nginx -t)")
    reload_and_wait(name=f"Reload nginx with {what}; wait until its old workers finished their requests",
                    seconds=int(nginx["proxy_read_timeout"]) + 5, _if=site.did_change)
