"""Forwarding the journal to a remote syslog endpoint with Debian's rsyslog, when the inventory names one.

journald keeps every host's log locally (journald.py); an inventory that sets `syslog_forward_target` also gets a
copy of everything on a central endpoint. rsyslog does the sending: Debian's package receives the journal (on
bookworm journald forwards each message to rsyslog's socket, as Debian configures both), and a drop-in of ours
sends all of it with omfwd, over TCP (a disk-assisted queue holds what an unreachable endpoint could not take,
optionally TLS with the gtls driver, verifying the endpoint's name) or UDP, then stops: Debian's own rules, which
would keep a second, unbounded copy in /var/log, never run. Debian's rsyslog.conf stays as shipped.

rsyslog reads its configuration only at start (HUP merely reopens files), so a change of the drop-in or of the CA
restarts it; the memory part of the queue is saved to disk over the restart (queue.saveOnShutdown).
With forwarding off nothing is installed, and a drop-in (and CA) of an earlier deploy is removed, with a restart
of a running rsyslog, so that it stops forwarding at once; the package itself stays (the deploy never removes
packages: `apt-get purge rsyslog` if nothing else needs it).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from roles.common import manifest
from roles.common.files import Check, put_checked, put_managed
from tsdeploy.rolespec import Context

MAIN = "/etc/rsyslog.conf"
DROP_IN_DIR = posixpath.dirname(manifest.RSYSLOG_FORWARD.path)
SERVICE = "rsyslog.service"


def rsyslog_check(*, main: str = MAIN, drop_in_dir: str = DROP_IN_DIR, needs: Sequence[str] = ()) -> Check:
    """`rsyslogd -N1` of the whole configuration as it will be, without touching the live files.

    rsyslogd validates a main configuration only, with its includes: the script builds a scratch copy of
    `main` whose `drop_in_dir/` paths read a scratch copy of that directory, in which the candidates replace
    their live drop-ins. Its messages name the live paths again.
    + needs: files the configuration names that rsyslogd -N1 does not open (the TLS CA is read only when
      connecting): each must exist, or the check fails naming it.
    """

    def script(paths: Mapping[str, str]) -> str:
        q = shlex.quote
        lines = ['tmp=$(mktemp -d) || exit 1', "trap 'rm -rf \"$tmp\"' EXIT",
                 f'cp -a {q(drop_in_dir)} "$tmp/d" || exit 1',
                 # A leftover candidate ends in .tsdeploy-candidate, not .conf: removed anyway, to be sure.
                 'find "$tmp/d" -name "*.tsdeploy-candidate" -exec rm -f {} +']
        for dest, path in paths.items():
            if posixpath.dirname(dest) != drop_in_dir:
                raise ValueError(f"rsyslog_check: {dest} is not a drop-in of {drop_in_dir}")
            lines.append(f'cp -p {q(path)} "$tmp/d/{posixpath.basename(dest)}" || exit 1')
        for needed in needs:
            lines.append(f'test -r {q(needed)} || {{ echo "{needed} does not exist: the drop-in names it"; exit 1; }}')
        pattern = drop_in_dir.replace("\\", "\\\\").replace(".", "\\.").replace("|", "\\|")
        lines += [
            f'sed "s|{pattern}/|$tmp/d/|g" {q(main)} > "$tmp/rsyslog.conf" || exit 1',
            'out=$(rsyslogd -N1 -f "$tmp/rsyslog.conf" 2>&1); rc=$?',
            f'[ "$rc" -eq 0 ] || printf \'%s\\n\' "$out" '
            f'| sed "s|$tmp/d/|{drop_in_dir}/|g; s|$tmp/rsyslog.conf|{main}|g"',
            'exit "$rc"',
        ]
        return "\n".join(lines)

    return Check(tool="rsyslogd -N1", script=script,
                 hint="correct templates/common/rsyslog-forward.conf.j2 (or the drop-in named above) and the "
                      "syslog_forward_* variables, and deploy again")


def apply(ctx: Context) -> None:
    forward = ctx["common"]["syslog_forward"]
    if not forward["enabled"]:
        _remove(forward)
        return
    # rsyslog (and rsyslog-gnutls for TLS) come with the role's other packages (manifest.packages, users.py).
    changed = []
    if forward["tls"]:
        changed.append(put_managed(ctx, manifest.SYSLOG_CA,
                                   name=f"Install the CA that signed {forward['host']}'s syslog certificate"))
    else:
        changed.append(files.file(name=f"Remove {forward['ca_path']}: syslog forwarding uses no TLS",
                                  path=forward["ca_path"], present=False))
    mode = "TLS" if forward["tls"] else forward["protocol"].upper()
    changed.append(put_checked(
        ctx, [manifest.RSYSLOG_FORWARD],
        check=rsyslog_check(needs=[forward["ca_path"]] if forward["tls"] else []),
        name=f"Forward the journal to {forward['target']} over {mode} in RFC 5424 format, with a disk-assisted "
             f"queue of at most {forward['queue_max_disk']} bytes"))
    # Started if it is not running (then it reads the new files anyway), restarted if it is.
    systemd.service(name="Restart rsyslog: it reads its configuration only at start", service=SERVICE,
                    restarted=True, _if=any_changed(*changed))
    systemd.service(name="Keep rsyslog active and enabled: it forwards the journal", service=SERVICE,
                    running=True, enabled=True)


def _remove(forward: Context) -> None:
    """Forwarding off: take an earlier deploy's drop-in and CA away, and restart a running rsyslog without them."""
    removed = [files.file(name=f"Remove {path}: syslog_forward_target is empty, nothing is forwarded",
                          path=path, present=False)
               for path in (forward["drop_in"], forward["ca_path"])]
    # running=None: a stopped (or absent) rsyslog stays as it is; a running one restarts without the forward.
    systemd.service(name="Restart rsyslog so that it stops forwarding", service=SERVICE, running=None,
                    restarted=True, _if=any_changed(*removed))
