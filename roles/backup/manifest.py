"""What the backup role manages on a backup host: pgBackRest's configuration and TLS files, the backup and drill
units and timers, the drill and metrics scripts, the repository, scratch and textfile directories, and the packages.
"""

from __future__ import annotations

from collections.abc import Callable

from tsdeploy.rolespec import Context, ManagedFile, ManagedPath

from roles.backup import metrics
from roles.backup.context import (CONF_DIR, CONF_PATH, CREATECLUSTER_DIR, CREATECLUSTER_DROP_IN, DIFF_TIMER,
                                  DRILL_BASE, DRILL_DIR, DRILL_SCRIPT, DRILL_TIMER, DRILL_UNIT, FULL_TIMER, LOG_PATH,
                                  METRICS_SCRIPT, RUN_AS, SPOOL_PATH, TLS_DIR)

#: Debian's package (the same version on both hosts: they share a Debian release, checked by validation).
PACKAGE = "pgbackrest"
UNIT_DIR = "/etc/systemd/system"


def remote(ctx: Context) -> bool:
    """The db host is another host (split): pgBackRest talks to it over mutual TLS, with a TLS server here, and
    PostgreSQL's binaries are here only for the drill (installing them must not create a cluster)."""
    return not ctx["backup"]["local"]


def _tls(name: str) -> str:
    return f"{TLS_DIR}/{name}"


#: Holds the repository's passphrase (and the S3 keys): root-owned, read by postgres only.
CONF = ManagedFile("backup/pgbackrest.conf.j2", CONF_PATH, "root", RUN_AS, "640",
                   template="backup/pgbackrest.conf.j2", secret=True, trigger="pgbackrest")
TLS_CA = ManagedFile("backup/tls-ca.crt", _tls("ca.crt"), RUN_AS, RUN_AS, "644", source=("backup", "tls_ca_src"),
                     variable="tls_ca_cert_file", when=remote, trigger="pgbackrest")
TLS_CERT = ManagedFile("backup/tls-host.crt", _tls("host.crt"), RUN_AS, RUN_AS, "644",
                       source=("backup", "tls_cert_src"), variable="tls_cert_file", when=remote, trigger="pgbackrest")
TLS_KEY = ManagedFile("backup/tls-host.key", _tls("host.key"), RUN_AS, RUN_AS, "600", source=("backup", "tls_key_src"),
                      variable="tls_key_file", secret=True, when=remote, trigger="pgbackrest")
#: Checked together with CONF as candidates; with it, what pgBackRest's TLS server reads at start.
TLS_FILES = (TLS_CA, TLS_CERT, TLS_KEY)

CREATECLUSTER = ManagedFile("backup/createcluster.conf.j2", CREATECLUSTER_DROP_IN, "root", "root", "644",
                            template="backup/createcluster.conf.j2", when=remote,
                            trigger="backup-packages")


def _unit(name: str) -> ManagedFile:
    return ManagedFile(f"backup/{name}.j2", f"{UNIT_DIR}/{name}", "root", "root", "644", template=f"backup/{name}.j2",
                       trigger="backup-units")


BACKUP_SERVICE = _unit("pgbackrest-backup@.service")
FULL_TIMER_UNIT = _unit(FULL_TIMER)
DIFF_TIMER_UNIT = _unit(DIFF_TIMER)
DRILL_SERVICE = _unit(DRILL_UNIT)
DRILL_TIMER_UNIT = _unit(DRILL_TIMER)
UNITS = (BACKUP_SERVICE, FULL_TIMER_UNIT, DIFF_TIMER_UNIT, DRILL_SERVICE, DRILL_TIMER_UNIT)
#: The timers the deploy enables and starts (their services run only when a timer or an operator starts them).
TIMERS = (FULL_TIMER, DIFF_TIMER, DRILL_TIMER)

DRILL = ManagedFile("backup/backup-drill.sh.j2", DRILL_SCRIPT, "root", "root", "755",
                    template="backup/backup-drill.sh.j2", trigger="backup-drill")

#: Run as root by the units' ExecStopPost (only root may write Debian's textfile directory); it reads the repository
#: as postgres.
METRICS_WRITER = ManagedFile("backup/backup-metrics.py.j2", METRICS_SCRIPT, "root", "root", "755",
                             template="backup/backup-metrics.py.j2", trigger="backup-metrics")

FILES = (CREATECLUSTER, CONF, TLS_CA, TLS_CERT, TLS_KEY, *UNITS, DRILL, METRICS_WRITER)


def _backup(key: str) -> Callable[[Context], str]:
    return lambda ctx: ctx["backup"][key]


CREATECLUSTER_PATH = ManagedPath(CREATECLUSTER_DIR, "root", "root", "755",
                                 why="Debian's drop-ins for pg_createcluster (read when postgresql-<v> is installed)")
#: Before the packages: the drop-in must be there when postgresql-<v> is installed.
PRE_PACKAGE_PATHS = (CREATECLUSTER_PATH,)

CONF_DIR_PATH = ManagedPath(CONF_DIR, "root", RUN_AS, "750",
                            why="pgBackRest's configuration, root-owned, read by postgres only")
TLS_DIR_PATH = ManagedPath(TLS_DIR, RUN_AS, RUN_AS, "750", why="the TLS files of pgBackRest's server, postgres-only")
REPO = ManagedPath(_backup("repo_path"), RUN_AS, RUN_AS, "750",
                   why="the repository: every backup and WAL segment, encrypted, never readable by others")
LOG = ManagedPath(LOG_PATH, RUN_AS, RUN_AS, "750", why="pgBackRest's log files")
SPOOL = ManagedPath(SPOOL_PATH, RUN_AS, RUN_AS, "750", why="pgBackRest's asynchronous archive queue")
DRILL_RESULT_DIR = ManagedPath(DRILL_DIR, RUN_AS, RUN_AS, "750", why="the restore drill's last result")
DRILL_SCRATCH = ManagedPath(DRILL_BASE, RUN_AS, RUN_AS, "700",
                            why="the restore drill's scratch cluster (a full copy of the database while it runs)")
DRILL_SCRIPT_DIR = ManagedPath("/usr/local/lib/tsdeploy", "root", "root", "755", why="scripts the deploy installs")
#: Exactly as Debian's prometheus-node-exporter ships it (root:root 0755; its postinst chowns only the parent,
#: /var/lib/prometheus), so that the exporter installed before or after this role, and the drift check, agree.
TEXTFILE_DIR = ManagedPath(metrics.TEXTFILE_DIR, metrics.TEXTFILE_USER, metrics.TEXTFILE_GROUP, metrics.TEXTFILE_MODE,
                           why="node exporter's textfile directory, where the backup and drill metrics land")
POST_PACKAGE_PATHS = (CONF_DIR_PATH, TLS_DIR_PATH, REPO, LOG, SPOOL, DRILL_RESULT_DIR, DRILL_SCRATCH,
                      DRILL_SCRIPT_DIR, TEXTFILE_DIR)

PATHS = (*PRE_PACKAGE_PATHS, *POST_PACKAGE_PATHS)


def packages(ctx: Context) -> list[str]:
    """pgBackRest, and the db host's PostgreSQL major version for the drill's scratch cluster (on the db host
    itself the postgres role installs it already)."""
    return [PACKAGE] if ctx["backup"]["local"] else [PACKAGE, f"postgresql-{ctx['backup']['pg_version']}"]
