"""The backup role's variables: the pgBackRest repository, its encryption, retention, schedules and archiving.

The postgres role imports the archiving ones (`backup_stanza`, `backup_archive_timeout`,
`backup_archive_queue_max`, `backup_tls_port`, `backup_process_max` and the S3 ones: a db host pushes WAL
to every repository itself), so validation checks them on db hosts too when backups are on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from roles.registry import Group

if TYPE_CHECKING:
    from tsdeploy.topology import Topology

#: systemd OnCalendar expressions are checked by shape here (the full grammar is systemd's): a day spec and
#: a time, e.g. "Sun *-*-* 01:30:00", "Mon..Sat *-*-* 01:30:00", "daily", "weekly".
_CALENDAR = re.compile(r"^(minutely|hourly|daily|weekly|monthly|yearly|"
                       r"((Mon|Tue|Wed|Thu|Fri|Sat|Sun)([.,]{1,2}(Mon|Tue|Wed|Thu|Fri|Sat|Sun))* )?"
                       r"[0-9*]{1,4}-[0-9*/]{1,4}-[0-9*/.,]{1,5} [0-9*/,]{1,5}:[0-9*/,]{2,5}(:[0-9*/,]{2,5})?)$")


def calendar(value: Any) -> tuple[str, str] | None:
    if isinstance(value, str) and _CALENDAR.match(value.strip()):
        return None
    return ("is not a systemd OnCalendar expression this role accepts",
            'write a day and a time, e.g. "Sun *-*-* 01:30:00" or "Mon..Sat *-*-* 01:30:00" '
            "(check it with `systemd-analyze calendar`)")


def optional(check: Any) -> Any:
    """`check`, except that "" (off) passes."""
    return lambda value: None if value in ("", None) else check(value)


BACKUP_STANZA = Variable("backup_stanza", "talentsphere",
                         "pgBackRest stanza name of the cluster (one stanza per PostgreSQL cluster)", checks.identifier)
BACKUP_REPO_PATH = Variable("backup_repo_path", "/var/lib/pgbackrest",
                            "the repository directory on the backup host (postgres 0750)")
BACKUP_REPO_CIPHER_PASS = Variable(
    "backup_repo_cipher_pass", REQUIRED,
    "passphrase of the repository's aes-256-cbc encryption; from the vault; losing it loses every backup",
    checks.secret(), secret=True)
BACKUP_RETENTION_FULL = Variable("backup_retention_full", 4, "full backups kept (with the diffs and WAL they need)",
                                 checks.integer(1, 9999))
BACKUP_RETENTION_DIFF = Variable("backup_retention_diff", 6,
                                 "differential backups kept (a full counts as one)", checks.integer(1, 9999))
BACKUP_FULL_CALENDAR = Variable("backup_full_calendar", "Sun *-*-* 01:30:00",
                                "when the full backup timer fires (systemd OnCalendar)", calendar)
BACKUP_DIFF_CALENDAR = Variable("backup_diff_calendar", "Mon..Sat *-*-* 01:30:00",
                                "when the differential backup timer fires (systemd OnCalendar)", calendar)
BACKUP_DRILL_CALENDAR = Variable("backup_drill_calendar", "Sat *-*-* 04:00:00",
                                 "when the restore drill timer fires (systemd OnCalendar)", calendar)
BACKUP_ARCHIVE_TIMEOUT = Variable("backup_archive_timeout", 60,
                                  "seconds after which PostgreSQL switches to a new WAL file so it is archived "
                                  "(bounds the writes a lost db host can take with it)", checks.integer(1, 3600))
BACKUP_ARCHIVE_QUEUE_MAX = Variable("backup_archive_queue_max", "2GiB",
                                    "WAL waiting for the repository beyond which pgBackRest drops it rather than "
                                    "fill the db host's disk (point-in-time recovery then needs a new backup)",
                                    checks.size)
BACKUP_PROCESS_MAX = Variable("backup_process_max", 2, "pgBackRest processes for backup, restore and archiving",
                              checks.integer(1, 64))
BACKUP_COMPRESS_TYPE = Variable("backup_compress_type", "zst", "compression of the repository's files",
                                checks.choice("zst", "lz4", "gz", "bz2", "none"))
BACKUP_TLS_PORT = Variable("backup_tls_port", 8432,
                           "port of pgBackRest's TLS server between the db host and the backup host",
                           checks.integer(1, 65535))
BACKUP_DRILL_PORT = Variable("backup_drill_port", 5499,
                             "port of the drill's scratch cluster on the backup host (Unix socket only)",
                             checks.integer(1024, 65535))

# A second repository in S3-compatible storage: every backup_s3_* empty = off; all of bucket, endpoint,
# region, key, key_secret and cipher_pass set = on (validated all-or-nothing).
BACKUP_S3_BUCKET = Variable("backup_s3_bucket", "", "S3 bucket of the optional second repository (\"\" = none)")
BACKUP_S3_ENDPOINT = Variable("backup_s3_endpoint", "", "S3 endpoint host name, e.g. s3.eu-west-1.amazonaws.com",
                              optional(checks.hostname))
BACKUP_S3_REGION = Variable("backup_s3_region", "", "S3 region, e.g. eu-west-1")
BACKUP_S3_PATH = Variable("backup_s3_path", "/talentsphere", "path of the repository inside the bucket")
BACKUP_S3_URI_STYLE = Variable("backup_s3_uri_style", "host", "host (AWS) or path (MinIO and most others)",
                               checks.choice("host", "path"))
BACKUP_S3_KEY = Variable("backup_s3_key", "", "S3 access key id; from the vault", optional(checks.issued_secret),
                         secret=True)
BACKUP_S3_KEY_SECRET = Variable("backup_s3_key_secret", "", "S3 secret access key; from the vault",
                                optional(checks.issued_secret), secret=True)
BACKUP_S3_CIPHER_PASS = Variable("backup_s3_cipher_pass", "",
                                 "passphrase of the S3 repository's encryption; from the vault",
                                 optional(checks.secret()), secret=True)
BACKUP_S3_RETENTION_FULL = Variable("backup_s3_retention_full", 8, "full backups kept in the S3 repository",
                                    checks.integer(1, 9999))

S3_VARIABLES = (BACKUP_S3_BUCKET, BACKUP_S3_ENDPOINT, BACKUP_S3_REGION, BACKUP_S3_PATH, BACKUP_S3_URI_STYLE,
                BACKUP_S3_KEY, BACKUP_S3_KEY_SECRET, BACKUP_S3_CIPHER_PASS, BACKUP_S3_RETENTION_FULL)
#: What a db host needs to archive: it pushes WAL to the backup host and to S3 itself.
ARCHIVING_VARIABLES = (BACKUP_STANZA, BACKUP_ARCHIVE_TIMEOUT, BACKUP_ARCHIVE_QUEUE_MAX, BACKUP_PROCESS_MAX,
                       BACKUP_COMPRESS_TYPE, BACKUP_TLS_PORT, *S3_VARIABLES)

VARIABLES: tuple[Variable, ...] = (
    # A remote backup host serves and verifies pgBackRest's TLS with them (roles/backup/manifest.py); listed
    # here so that they are required and checked (an expired certificate is refused) on backup hosts too.
    TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
    BACKUP_STANZA, BACKUP_REPO_PATH, BACKUP_REPO_CIPHER_PASS, BACKUP_RETENTION_FULL, BACKUP_RETENTION_DIFF,
    BACKUP_FULL_CALENDAR, BACKUP_DIFF_CALENDAR, BACKUP_DRILL_CALENDAR, BACKUP_ARCHIVE_TIMEOUT,
    BACKUP_ARCHIVE_QUEUE_MAX, BACKUP_PROCESS_MAX, BACKUP_COMPRESS_TYPE, BACKUP_TLS_PORT, BACKUP_DRILL_PORT,
    *S3_VARIABLES,
)

#: The S3 settings without which the second repository cannot work (path, URI style and retention have defaults).
S3_REQUIRED = (BACKUP_S3_BUCKET, BACKUP_S3_ENDPOINT, BACKUP_S3_REGION, BACKUP_S3_KEY, BACKUP_S3_KEY_SECRET,
               BACKUP_S3_CIPHER_PASS)


def s3_problems(topology: Topology) -> list[str]:
    """The S3 repository is all or nothing: a bucket without keys (or keys without a bucket) is a typo or a
    forgotten vault entry, and pgBackRest would fail on every backup and every archived WAL segment.

    Checked on the backup host, whose values both sides use (the db host pushes its WAL to S3 with them too).
    Secret values are never shown: only which variables are set.
    """
    from tsdeploy.validation import origin  # validation imports the roles: import it when checking

    problems = []
    for host in topology.hosts(Group.BACKUP):
        merged = topology.vars_of(host)
        given = [variable.name for variable in S3_REQUIRED if merged.get(variable.name) not in ("", None)]
        if not given or len(given) == len(S3_REQUIRED):
            continue
        missing = [variable.name for variable in S3_REQUIRED if variable.name not in given]
        where = ", ".join(f"{name} ({origin(topology.inventory, host, name)})" for name in given)
        problems.append(
            f"{host}: the S3 repository is half configured: {where} set, but {', '.join(missing)} empty; fix: set "
            f"all of {', '.join(variable.name for variable in S3_REQUIRED)} (the keys and the passphrase from the "
            "vault) for a second repository in S3, or none of them for none")
    return problems


#: The role's inventory-wide checks (`RoleSpec.checks`).
CHECKS: tuple[Callable[[Topology], list[str]], ...] = (s3_problems,)


class S3Repository(TypedDict):
    """The optional second repository (pgBackRest's repo2) in S3-compatible storage, as both pgBackRest files
    describe it: the db host pushes WAL there itself, the backup host backs up to it."""

    bucket: str
    endpoint: str
    region: str
    path: str
    uri_style: str
    key: str
    key_secret: str
    cipher_pass: str
    retention_full: int


def s3_repository(v: dict[str, Any]) -> S3Repository | None:
    """The S3 repository when the variables `v` set its bucket (the rest is validated all-or-nothing)."""
    if not v["backup_s3_bucket"]:
        return None
    return S3Repository(bucket=str(v["backup_s3_bucket"]), endpoint=str(v["backup_s3_endpoint"]),
                        region=str(v["backup_s3_region"]), path=str(v["backup_s3_path"]),
                        uri_style=str(v["backup_s3_uri_style"]), key=str(v["backup_s3_key"]),
                        key_secret=str(v["backup_s3_key_secret"]), cipher_pass=str(v["backup_s3_cipher_pass"]),
                        retention_full=int(v["backup_s3_retention_full"]))
