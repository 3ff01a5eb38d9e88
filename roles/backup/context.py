"""The backup role's context: the pgBackRest repository host, its schedules, the restore drill and its cluster.

The cluster's facts (host, address, port, version, data dir, unit, app database) come from PostgreSQL's context
(`view.service("postgres")`); the postgres role reads the backup role's variables for archiving, never this
context. The app's expected index names come from the app's source (`app/src/talentsphere/indexes.py`), read
as text: the control node never imports the app package (its dependencies are not the deploy's).
"""

from __future__ import annotations

import ast
import functools
import os
import pathlib
from typing import TYPE_CHECKING, TypedDict

from roles.backup import metrics
from roles.backup.variables import S3Repository, s3_repository
from roles.registry import Group
from tsdeploy import ROOT
from tsdeploy.rolespec import Inbound
from tsdeploy.units import parse_size

if TYPE_CHECKING:
    from tsdeploy.topology import HostView

#: pgBackRest reads this file first; Debian's sample /etc/pgbackrest.conf is read only when it is absent.
CONF_DIR = "/etc/pgbackrest"
CONF_PATH = f"{CONF_DIR}/pgbackrest.conf"
#: The inventory's CA and this host's certificate and key for pgBackRest's mutual TLS (split topology only).
TLS_DIR = f"{CONF_DIR}/tls"
LOG_PATH = "/var/log/pgbackrest"
SPOOL_PATH = "/var/spool/pgbackrest"
#: Debian's PostgreSQL puts its Unix socket here (pgBackRest connects as postgres on a local cluster).
SOCKET_PATH = "/var/run/postgresql"
#: Debian's unit running `pgbackrest server` as postgres: the TLS server the db host talks to.
SERVER_SERVICE = "pgbackrest.service"
#: pgBackRest runs as postgres everywhere (Debian's model: no pgbackrest user, the repository is postgres's).
RUN_AS = "postgres"
#: The systemd template unit of a backup (%i = full, diff or incr) and the drill's units.
BACKUP_UNIT = "pgbackrest-backup@{type}.service"
FULL_TIMER = "pgbackrest-backup-full.timer"
DIFF_TIMER = "pgbackrest-backup-diff.timer"
DRILL_UNIT = "pgbackrest-drill.service"
DRILL_TIMER = "pgbackrest-drill.timer"
#: The restore drill: its script, where it records its last result, and the scratch cluster's base dir.
DRILL_SCRIPT = "/usr/local/lib/tsdeploy/backup-drill"
DRILL_DIR = "/var/lib/tsdeploy/drill"
DRILL_RESULT = f"{DRILL_DIR}/last.json"
DRILL_BASE = "/var/lib/pgbackrest-drill"
#: The script that writes the backup and drill metrics for node exporter's textfile collector (`metrics.py`).
METRICS_SCRIPT = "/usr/local/lib/tsdeploy/backup-metrics"
#: How long the drill's scratch cluster may take to replay WAL up to the end of the archive.
DRILL_RECOVERY_TIMEOUT = 3600
#: Debian's createcluster.conf reads this directory; a drop-in there stops postgresql-<v> from creating and
#: starting a `main` cluster when the drill's binaries are installed on a host that serves no PostgreSQL.
CREATECLUSTER_DIR = "/etc/postgresql-common/createcluster.d"
CREATECLUSTER_DROP_IN = f"{CREATECLUSTER_DIR}/50-tsdeploy-no-main-cluster.conf"
#: The app's index list, relative to its source tree (`tsdeploy/artifacts.py` ships the same tree).
INDEXES_MODULE = pathlib.Path("src") / "talentsphere" / "indexes.py"


class BackupContext(TypedDict):
    """`ctx["backup"]` on a backup host (other tooling reads it with `Topology(inventory).service("backup")`)."""

    stanza: str
    #: This host is also the db host: one local pgbackrest.conf, no TLS server, WAL pushed locally.
    local: bool
    host: str
    address: str
    repo_path: str
    cipher_pass: str
    retention_full: int
    retention_diff: int
    compress_type: str
    process_max: int
    archive_queue_max: str
    conf_dir: str
    conf_path: str
    log_path: str
    spool_path: str
    run_as: str
    tls_dir: str
    tls_port: int
    tls_ca_src: str
    tls_cert_src: str
    tls_key_src: str
    #: tls-server-auth of this host's TLS server: the db host's certificate CN (its name) and the stanza.
    tls_server_auth: str
    server_service: str
    db_host: str
    db_address: str
    pg_path: str
    pg_port: int
    pg_version: int
    pg_bin: str
    pg_service: str
    pg_socket_path: str
    db_name: str
    s3: S3Repository | None
    full_calendar: str
    diff_calendar: str
    drill_calendar: str
    backup_unit: str
    drill_unit: str
    timers: list[str]
    drill_script: str
    drill_dir: str
    drill_result: str
    drill_base: str
    drill_port: int
    drill_recovery_timeout: int
    #: node exporter's textfile directory, the two files written there and the script that writes them.
    textfile_dir: str
    metrics_file: str
    drill_metrics_file: str
    metrics_script: str
    #: {"backup": {...}, "drill": {...}}: each file's metrics ({key: {"name", "help", "labels"}}, `metrics.py`).
    metrics: dict[str, dict[str, dict[str, object]]]
    expected_indexes: list[str]
    createcluster_drop_in: str
    warnings: list[str]


@functools.cache
def _index_names(path: pathlib.Path) -> tuple[str, ...]:
    """The first argument of every `IndexSpec("name", ...)` in the app's INDEXES, read from its source text."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        value = (node.value if isinstance(node, ast.AnnAssign) else node.value if isinstance(node, ast.Assign)
                 else None)
        targets = ([node.target] if isinstance(node, ast.AnnAssign)
                   else node.targets if isinstance(node, ast.Assign) else [])
        if value is None or not any(isinstance(target, ast.Name) and target.id == "INDEXES" for target in targets):
            continue
        for call in ast.walk(value):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "IndexSpec"
                    and call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
                names.append(call.args[0].value)
    return tuple(names)


def expected_indexes() -> tuple[list[str], list[str]]:
    """The app's index names (what `talentsphere optimize-db` creates) and warnings when they cannot be read.

    The app tree is the one a deploy ships (TSDEPLOY_APP_DIR, else the bundle's app/, as `tsdeploy/artifacts.py`
    `app_source_dir`), so the drill expects the indexes of the release that is deployed.
    """
    path = pathlib.Path(os.environ.get("TSDEPLOY_APP_DIR", ROOT / "app")) / INDEXES_MODULE
    if not path.is_file():
        return [], [f"the restore drill cannot check the app's indexes: {path} does not exist"]
    names = list(_index_names(path))
    if not names:
        return [], [f"the restore drill cannot check the app's indexes: no IndexSpec(...) in INDEXES of {path}"]
    return names, []


def pgbackrest_size(value: object) -> str:
    """The size in pgBackRest's spelling: its KB/MB/GB are 1024-based like ours, a plain number is bytes.

    >>> pgbackrest_size("2GiB"), pgbackrest_size("1536MB"), pgbackrest_size(1000)
    ('2GB', '1536MB', '1000')
    """
    size = parse_size(value)
    for unit, factor in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def is_local(view: HostView) -> bool:
    """Whether this backup host is also the db host (single topology): no network transport at all."""
    return Group.DB in view.groups


def inbound(view: HostView) -> list[Inbound]:
    """pgBackRest's TLS server, reached by the db host (archive-push of its WAL); none when it is this host."""
    if is_local(view):
        return []
    return [Inbound(int(view.vars["backup_tls_port"]), view.addresses(Group.DB),
                    "pgBackRest's TLS server from the db host (WAL archiving)")]


def derive(view: HostView) -> BackupContext:
    v = view.vars
    pg = view.service("postgres")
    stanza = str(v["backup_stanza"])
    version = int(pg["version"])
    indexes, warnings = expected_indexes()
    return BackupContext(
        stanza=stanza,
        local=is_local(view),
        host=view.name,
        address=str(v["private_address"]),
        repo_path=str(v["backup_repo_path"]),
        cipher_pass=str(v["backup_repo_cipher_pass"]),
        retention_full=int(v["backup_retention_full"]),
        retention_diff=int(v["backup_retention_diff"]),
        compress_type=str(v["backup_compress_type"]),
        process_max=int(v["backup_process_max"]),
        archive_queue_max=pgbackrest_size(v["backup_archive_queue_max"]),
        conf_dir=CONF_DIR,
        conf_path=CONF_PATH,
        log_path=LOG_PATH,
        spool_path=SPOOL_PATH,
        run_as=RUN_AS,
        tls_dir=TLS_DIR,
        tls_port=int(v["backup_tls_port"]),
        tls_ca_src=v.get("tls_ca_cert_file") or "",
        tls_cert_src=v.get("tls_cert_file") or "",
        tls_key_src=v.get("tls_key_file") or "",
        tls_server_auth=f"{pg['host']}={stanza}",
        server_service=SERVER_SERVICE,
        db_host=str(pg["host"]),
        db_address=str(pg["address"]),
        pg_path=str(pg["data_dir"]),
        pg_port=int(pg["port"]),
        pg_version=version,
        pg_bin=f"/usr/lib/postgresql/{version}/bin",
        pg_service=str(pg["service"]),
        pg_socket_path=SOCKET_PATH,
        db_name=str(pg["db_name"]),
        s3=s3_repository(v),
        full_calendar=str(v["backup_full_calendar"]),
        diff_calendar=str(v["backup_diff_calendar"]),
        drill_calendar=str(v["backup_drill_calendar"]),
        backup_unit=BACKUP_UNIT,
        drill_unit=DRILL_UNIT,
        timers=[FULL_TIMER, DIFF_TIMER, DRILL_TIMER],
        drill_script=DRILL_SCRIPT,
        drill_dir=DRILL_DIR,
        drill_result=DRILL_RESULT,
        drill_base=DRILL_BASE,
        drill_port=int(v["backup_drill_port"]),
        drill_recovery_timeout=DRILL_RECOVERY_TIMEOUT,
        textfile_dir=metrics.TEXTFILE_DIR,
        metrics_file=metrics.BACKUP_FILE,
        drill_metrics_file=metrics.DRILL_FILE,
        metrics_script=METRICS_SCRIPT,
        metrics={"backup": metrics.describe(metrics.BACKUP_METRICS), "drill": metrics.describe(metrics.DRILL_METRICS)},
        expected_indexes=indexes,
        createcluster_drop_in=CREATECLUSTER_DROP_IN,
        warnings=warnings,
    )
