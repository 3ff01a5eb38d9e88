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
from roles.backup.filecheck import pgbackrest_files_check
from roles.common.files import Check, put_checked, put_managed, put_path
from roles.common.peers import resolve_peer
from tsdeploy.rolespec import Context

def repository_check(*, host_name: str, stanza: str, conf: str, tls: Mapping[str, str] | None = None,
                     user: str = RUN_AS) -> Check:
    """The repository host's files as they will be: `help backup`, and `help server` in split (its TLS server)
    or `help archive-push` in single (PostgreSQL's archive_command reads this file); in split, the TLS files
    as the db host's server will check them (`roles/backup/filecheck.py`)."""
    q = shlex.quote
    commands = [f"--stanza={q(stanza)} help backup",
                "help server" if tls else f"--stanza={q(stanza)} help archive-push"]
    return pgbackrest_files_check(host_name=host_name, conf=conf, commands=commands, tls=tls, peer="the db host",
                                  template="templates/backup/pgbackrest.conf.j2", user=user)


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
    put_managed(ctx, manifest.METRICS_WRITER,
                name=f"Install {backup['metrics_script']}: the backup and drill metrics for node exporter's textfile "
                     f"collector ({backup['textfile_dir']})")
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
