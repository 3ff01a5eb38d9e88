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

from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed

from roles.backup.filecheck import pgbackrest_files_check
from roles.common.files import Check, put_checked, put_managed, put_path
from roles.common.peers import resolve_peer
from roles.postgres import manifest
from tsdeploy.rolespec import Context

def pgbackrest_check(*, host_name: str, stanza: str, conf: str, ca: str, cert: str, key: str,
                     user: str = "postgres") -> Check:
    """The db-side files as they will be: `help archive-push` (PostgreSQL's archive_command) and `help server`
    (the TLS server the backup host reads the cluster through), and the TLS files as the backup host's server
    will check them (`roles/backup/filecheck.py`)."""
    return pgbackrest_files_check(host_name=host_name, conf=conf,
                                  commands=[f"--stanza={shlex.quote(stanza)} help archive-push", "help server"],
                                  tls={"ca": ca, "cert": cert, "key": key}, peer="the backup host",
                                  template="templates/postgres/pgbackrest.conf.j2", user=user)


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
