"""The metrics the backup role writes for node exporter's textfile collector: the age of the newest backups and the
restore drill's result. pgBackRest has no exporter in Debian, so the backup host writes them itself, after every
backup and every drill (`templates/backup/backup-metrics.py.j2`, run by the units' `ExecStopPost`).

Declarations only (no pyinfra): the context hands the names to the script's template, and the alert-rule tests read
`METRICS` to know that these names are exported by a real writer.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    """One gauge of the textfile: its name (Prometheus conventions: base units, `_timestamp_seconds` for Unix
    times), its HELP text and its labels."""

    name: str
    help: str
    labels: tuple[str, ...]


_BACKUP_LABELS = ("stanza", "repo", "type")

#: Written after each backup (`talentsphere_backup.prom`), from `pgbackrest info --output=json`: one series per
#: repository and backup type present in it (full, diff, incr), so a backup taken by hand counts as well.
BACKUP_LAST_SUCCESS = Metric("talentsphere_backup_last_success_timestamp_seconds",
                             "Unix time at which the newest successful backup of this type ended (pgBackRest's stop "
                             "timestamp)", _BACKUP_LABELS)
BACKUP_LAST_DURATION = Metric("talentsphere_backup_last_duration_seconds",
                              "Seconds the newest successful backup of this type took, start to stop", _BACKUP_LABELS)
BACKUP_LAST_SIZE = Metric("talentsphere_backup_last_size_bytes",
                          "Bytes the newest successful backup of this type added to the repository (after "
                          "compression)", _BACKUP_LABELS)
BACKUP_METRICS = (BACKUP_LAST_SUCCESS, BACKUP_LAST_DURATION, BACKUP_LAST_SIZE)

#: Written after each restore drill (`talentsphere_backup_drill.prom`), from its last.json and last-passed.json.
DRILL_LAST_RUN_SUCCESS = Metric("talentsphere_backup_drill_last_run_success",
                                "1 when the last restore drill passed, 0 when it failed", ("stanza",))
DRILL_LAST_RUN = Metric("talentsphere_backup_drill_last_run_timestamp_seconds",
                        "Unix time at which the last restore drill ended, passed or not", ("stanza",))
DRILL_LAST_SUCCESS = Metric("talentsphere_backup_drill_last_success_timestamp_seconds",
                            "Unix time at which the last restore drill that passed ended", ("stanza",))
DRILL_LAST_DURATION = Metric("talentsphere_backup_drill_last_run_duration_seconds",
                             "Seconds the last restore drill took, passed or not", ("stanza",))
DRILL_LAST_RESTORE_DURATION = Metric("talentsphere_backup_drill_last_restore_duration_seconds",
                                     "Seconds from the last drill's restore to its promotion (absent when it did not "
                                     "get that far)", ("stanza",))
DRILL_METRICS = (DRILL_LAST_RUN_SUCCESS, DRILL_LAST_RUN, DRILL_LAST_SUCCESS, DRILL_LAST_DURATION,
                 DRILL_LAST_RESTORE_DURATION)

#: Every metric name the backup role exports (the alert-rule tests accept these as exported).
METRICS: tuple[str, ...] = tuple(metric.name for metric in (*BACKUP_METRICS, *DRILL_METRICS))

#: Debian's prometheus-node-exporter reads this directory (its --collector.textfile.directory default); the package
#: ships it root:root 0755 and its postinst leaves it so (it chowns only /var/lib/prometheus, to prometheus).
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
TEXTFILE_USER = "root"
TEXTFILE_GROUP = "root"
TEXTFILE_MODE = "755"
#: One file per writer (the backup units and the drill may run at the same time): neither rewrites the other's.
BACKUP_FILE = f"{TEXTFILE_DIR}/talentsphere_backup.prom"
DRILL_FILE = f"{TEXTFILE_DIR}/talentsphere_backup_drill.prom"


def describe(metrics: tuple[Metric, ...]) -> dict[str, dict[str, object]]:
    """{key: {"name", "help", "labels"}} for the script's template, keyed by the part after the role's prefix."""
    return {metric.name.removeprefix("talentsphere_backup_"):
            {"name": metric.name, "help": metric.help, "labels": list(metric.labels)} for metric in metrics}
