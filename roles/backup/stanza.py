"""The stanza in the repository and the proof that WAL archiving works, both decided from pgBackRest's own answers.

Both run after every host's roles converged (the backup role's `finish`): `stanza-create` reads the cluster
through the db host's TLS server (split) and `check` needs PostgreSQL to archive with the db host's
configuration. Each is a fact-comparing operation, so a second deploy reports no change:

+ `stanza`: `pgbackrest info` says whether the stanza exists in every repository; `stanza-create` only when a
  repository lacks it.
+ `archiving_works`: `pgbackrest check` on every deploy (it switches a WAL segment and waits until it is in the
  repository). Passing is no change, unless the repository holds no backup yet and none is running: then the
  first full backup runs and the deploy waits for it (`systemctl start pgbackrest-backup@full.service`, the
  timers' unit and journal), then the restore drill if it never ran, so a fresh deployment is protected and
  its restore proven at once, not at the next timer.
  `archive_mode` still off (PostgreSQL's restart is pending: the deploy warns and records it) is a warning,
  not a failure. Any other failure fails the deploy with pgBackRest's words and the fix, e.g. a repository
  holding another cluster's backups after the db host was rebuilt.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from pyinfra import host, logger
from pyinfra.api import FactBase, StringCommand, operation
from pyinfra.api.exceptions import OperationError

from roles.backup.context import RUN_AS

#: pgBackRest as postgres (the repository, its configuration and the lock are postgres's).
PGBACKREST = ("runuser", "-u", RUN_AS, "--", "/usr/bin/pgbackrest")
#: The marker after a command's output that carries its exit status (a fact's command must itself succeed).
RC_MARKER = "tsdeploy-rc="

#: pgBackRest's info status codes that mean "this repository has no (complete) stanza": stanza-create fixes them.
MISSING_STANZA_CODES = {1: "missing stanza path", 3: "missing stanza data"}
#: pgBackRest's error codes (src/common/error.yaml) the check tells apart.
ARCHIVE_DISABLED = 87      # archive_mode must be enabled: set, waiting for PostgreSQL's restart
ARCHIVE_COMMAND = 68       # archive_command does not call pgbackrest
DATABASE_MISMATCH = 28     # the repository's info files are another cluster's (system identifier)


def _command(stanza: str, *arguments: str) -> str:
    """Shell: run pgBackRest as postgres, print its output, then the exit status after RC_MARKER."""
    command = shlex.join([*PGBACKREST, f"--stanza={stanza}", *arguments])
    return f'out=$({command} 2>&1); rc=$?; printf "%s\\n" "$out"; echo "{RC_MARKER}$rc"'


def _split_rc(output: list[str]) -> tuple[int | None, list[str]]:
    """(exit status, the lines before the marker); None when the marker is missing (the command did not run)."""
    if output and output[-1].startswith(RC_MARKER):
        try:
            return int(output[-1][len(RC_MARKER):]), output[:-1]
        except ValueError:
            pass
    return None, output


def error_code(lines: list[str]) -> int | None:
    """pgBackRest's error code from its `ERROR: [087]: ...` line.

    >>> error_code(["ERROR: [087]: archive_mode must be enabled"])
    87
    """
    for line in lines:
        if match := re.search(r"ERROR: \[(\d+)\]", line):
            return int(match.group(1))
    return None


class StanzaInfo(FactBase):
    """The stanza in each repository (`pgbackrest info --output=json` as postgres): {"ok": bool, "missing":
    [repository keys lacking the stanza], "status": message, "backups": how many, "running": a backup holds the
    stanza's lock, "error": pgBackRest's words}.
    """

    def command(self, stanza: str) -> str:
        return _command(stanza, "--output=json", "--log-level-console=warn", "info")

    def process(self, output: list[str]) -> dict[str, Any]:
        rc, lines = _split_rc(output)
        text = "\n".join(lines).strip()
        failed = {"ok": False, "missing": [], "status": "", "backups": 0, "running": False}
        if rc != 0:
            return failed | {"error": text or f"exit status {rc}"}
        try:
            stanzas = json.loads(text[text.index("["):])
        except ValueError:
            return failed | {"error": f"unreadable output of pgbackrest info: {text}"}
        found = stanzas[0] if stanzas else {}
        missing = [repo.get("key") for repo in found.get("repo", [])
                   if repo.get("status", {}).get("code") in MISSING_STANZA_CODES]
        status = found.get("status", {})
        return {"ok": True, "missing": missing, "status": status.get("message", ""),
                "backups": len(found.get("backup", [])),
                "running": bool(status.get("lock", {}).get("backup", {}).get("held")), "error": ""}


class ArchiveCheck(FactBase):
    """`pgbackrest check` as postgres (switches a WAL segment and waits until the repository has it):
    {"passed": bool, "code": pgBackRest's error code or None, "message": its output}."""

    def command(self, stanza: str) -> str:
        return _command(stanza, "--log-level-console=warn", "check")

    def process(self, output: list[str]) -> dict[str, Any]:
        rc, lines = _split_rc(output)
        message = "\n".join(line.rstrip() for line in lines if line.strip())
        return {"passed": rc == 0, "code": error_code(lines), "message": message or f"exit status {rc}"}


@operation()
def stanza(stanza: str):
    """Create the stanza in each repository that lacks it (`pgbackrest stanza-create`, as postgres).

    + stanza: the stanza's name (backup_stanza)

    Updates: nothing when every repository has the stanza. Fails with pgBackRest's words when it cannot read the
    repository (its configuration, the passphrase, the TLS connection to the db host).
    """
    info = host.get_fact(StanzaInfo, stanza=stanza)
    if not info["ok"]:
        raise OperationError(f"pgBackRest cannot read the stanza {stanza} in its repository: {info['error']}\n"
                             "fix: check /etc/pgbackrest/pgbackrest.conf on this host and the backup_* variables "
                             "(the repository path and backup_repo_cipher_pass must match the existing repository)")
    if not info["missing"]:
        host.noop(f"stanza {stanza} exists in every repository ({info['status']})")
        return
    if host.state.is_executing:
        logger.info(f"{host.print_prefix}creating stanza {stanza} in repositories {info['missing']}")
    yield StringCommand("sh", "-c", shlex.quote(_stanza_create(stanza)))


#: How often stanza-create is tried while another pgBackRest process holds the stanza's lock.
LOCK_ATTEMPTS = 30
LOCK_ERROR = 50  # LockAcquireError


def _stanza_create(stanza: str) -> str:
    """Shell: stanza-create, tried again while the lock is taken (on a db host that is also the repository host,
    PostgreSQL's asynchronous archive-push holds it for a moment each time it runs); other errors fail at once."""
    command = shlex.join([*PGBACKREST, f"--stanza={stanza}", "--log-level-console=warn", "stanza-create"])
    return (f"for _ in $(seq {LOCK_ATTEMPTS}); do out=$({command} 2>&1) && exit 0; "
            f'case "$out" in *"ERROR: [0{LOCK_ERROR}]"*) sleep 1 ;; *) break ;; esac; done; '
            'printf "%s\\n" "$out" >&2; exit 1')


def check_failure(stanza: str, result: dict[str, Any], db_host: str) -> str:
    """The deploy's error for a failed `pgbackrest check`: pgBackRest's words, what they mean here, the fix."""
    words = result["message"]
    if result["code"] == DATABASE_MISMATCH:
        return (f"pgbackrest check: {words}\nThe repository holds the backups of another PostgreSQL cluster than "
                f"the one now running on {db_host} (its system identifier differs): {db_host} was rebuilt or its "
                "cluster re-created. No backup of the new cluster is taken and its WAL is not archived.\n"
                "fix: restore the cluster from the repository: `tsdeploy restore INVENTORY --latest --yes` "
                "(the repository's backups are kept; nothing is deleted)")
    if result["code"] == ARCHIVE_COMMAND:
        return (f"pgbackrest check: {words}\nPostgreSQL on {db_host} does not archive with pgBackRest.\n"
                f"fix: deploy {db_host} (its postgres role sets archive_command = 'pgbackrest --stanza={stanza} "
                "archive-push %p' and reloads)")
    return (f"pgbackrest check of stanza {stanza} failed: {words}\n"
            f"fix: read /var/log/pgbackrest/{stanza}-check.log on this host and the PostgreSQL log on {db_host}; "
            f"WAL archiving (archive_command on {db_host}, pgBackRest's TLS servers on both hosts) must work "
            "before backups can be taken")


@operation()
def archiving_works(stanza: str, db_host: str):
    """Prove that WAL archiving works with `pgbackrest check`.

    + stanza: the stanza's name
    + db_host: the db host's inventory name, for messages

    Updates: nothing; the check passing is no change. archive_mode still off (PostgreSQL's restart pending)
    only warns: the deploy's pending-restart report names the restart. Any other failure fails the operation
    with pgBackRest's message and the fix.
    """
    yield from ()  # decides only: never a command (pyinfra needs the generator)
    result = host.get_fact(ArchiveCheck, stanza=stanza)
    if result["passed"]:
        host.noop(f"pgbackrest check passed: {db_host} archives its WAL into the repository of stanza {stanza}")
        return
    if result["code"] == ARCHIVE_DISABLED:
        if host.state.is_executing:
            logger.warning(f"{host.print_prefix}backups are configured, but PostgreSQL on {db_host} does not archive "
                           "its WAL yet (archive_mode takes effect at its restart, which is pending): run `tsdeploy "
                           f"deploy INVENTORY --allow-restart postgres`; until then no backup can be taken")
        host.noop(f"pgbackrest check skipped: archive_mode on {db_host} waits for PostgreSQL's restart")
        return
    raise OperationError(check_failure(stanza, result, db_host))


@operation()
def first_backup(stanza: str, first_backup_unit: str, drill_unit: str, drill_result: str):
    """Take the first full backup when the repository holds none, then run the restore drill if it never ran.

    + stanza: the stanza's name
    + first_backup_unit: the unit that takes a full backup (pgbackrest-backup@full.service)
    + drill_unit, drill_result: the restore drill's unit and its result file

    Updates: nothing when the repository holds a backup (or one is running), or archiving does not work yet.
    Otherwise the deploy waits for the unit, then for the drill, so that it reports done only with the database
    backed up and its restore proven (`tsdeploy verify` right after a first deploy passes its backup controls).
    It runs last, after the app's migrations, so that the first backup holds the app's schema. On a large
    existing database the first deploy with a backup host takes as long as its first full backup and drill.
    """
    if not host.get_fact(ArchiveCheck, stanza=stanza)["passed"]:
        host.noop("no first backup: archiving does not work yet (see the check above)")
        return
    info = host.get_fact(StanzaInfo, stanza=stanza)
    if not info["ok"] or info["backups"] or info["running"]:
        host.noop(f"the repository of stanza {stanza} holds a backup (or one is running)")
        return
    if host.state.is_executing:
        logger.info(f"{host.print_prefix}the repository holds no backup of {stanza} yet: running "
                    f"{first_backup_unit}, then the restore drill if it never ran")
    yield StringCommand("systemctl", "start", first_backup_unit)
    yield StringCommand("sh", "-c", shlex.quote(f"test -e {shlex.quote(drill_result)} || "
                                                f"systemctl start {shlex.quote(drill_unit)}"))
