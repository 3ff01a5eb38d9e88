"""Backups on the split lab under live traffic: the drill, a point-in-time restore, the loss of the db host.

The split lab's backup1 holds the pgBackRest repository; db1 archives its WAL there continuously. Traffic runs
through the lb over HTTPS (reads and job posts as an employer, tests/e2e/traffic.py) while each proof runs:

1. `tsdeploy drill` restores the latest backup into a scratch cluster on backup1 and checks it; a corrupted
   repository file makes it fail, naming what failed.
2. Rows are written, a backup taken, more written, a time T noted, more written, then a table's rows are
   deleted by mistake: `tsdeploy restore --to T --yes` brings back every job answered 201 before T and none
   sent after T.
3. db1 is lost (its disk deleted, a fresh host booted) and deployed afresh (the deploy stops at the stanza
   check: the repository holds another cluster, and it says to restore); `tsdeploy restore --latest --yes`
   brings the data back up to the last archived WAL, and the next deploy passes; the writes lost and the time
   it took are printed.

Figures (pytest -s, or the junit log) go to the issue notes. The module runs before test_deploy's and
test_verify's checks of the same lab, and leaves it restored, archiving, with a passing drill.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from site_client import TSDEPLOY, Lab, job_writes, raised_api_limit
from traffic import Traffic

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e

READS = ("/api/jobs?per_page=5", "/api/jobs/featured", "/api/categories")
#: Requests/s offered: enough writes on each side of a restore target, with CPU left for the backup, the
#: restore and the host rebuild the tests time.
PACE = 60.0
PSQL = "sudo runuser -u postgres -- psql -XAt -d talentsphere -c"
#: The lab inventory's archive_timeout (the role default): the most writes a lost db host may take with it,
#: plus the time an asynchronous push of the last segment may take.
ARCHIVE_TIMEOUT = 60
PUSH_MARGIN = 15


@pytest.fixture(scope="module")
def lab(deployed_split: Deployment) -> Iterator[Lab]:
    with raised_api_limit(deployed_split) as site:
        yield site


@pytest.fixture(scope="module")
def employer(lab: Lab) -> str:
    return lab.employer()


def tsdeploy(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    process = subprocess.run([TSDEPLOY, *args[:1], str(lab.lab.inventory_dir), *args[1:]], capture_output=True,
                             text=True, check=False, timeout=1800)
    print(f"\n$ tsdeploy {' '.join(args)} -> {process.returncode}\n{process.stdout}{process.stderr[-3000:]}")
    assert not check or process.returncode == 0, process.stderr[-6000:]
    return process




def present(lab: Lab, ids: list[int], created_before: datetime.datetime | None = None) -> set[int]:
    """The ids among `ids` the database holds (only rows created before `created_before`, if given: after a
    restore to an earlier time the sequence is back there too, so new jobs get the ids of the lost ones)."""
    if not ids:
        return set()
    when = f" AND created_at < '{created_before.isoformat()}'" if created_before else ""
    rows = lab.ssh("db1", f"{PSQL} \"SELECT id FROM jobs WHERE id IN ({','.join(map(str, ids))}){when}\"").split()
    return {int(row) for row in rows}


def wall(traffic: Traffic, monotonic: float) -> datetime.datetime:
    """The wall-clock time of a monotonic instant of the traffic's recording (lab hosts share this clock)."""
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=time.monotonic() - monotonic)


def test_the_drill_passes_and_fails_loudly_on_a_corrupted_repository_file(lab: Lab, employer: str) -> None:
    # A transaction after the newest backup, archived (check switches the WAL segment and waits for it), so the
    # drill has a recovery point to replay to whatever ran on the lab before this test.
    lab.post_job(employer, "Drill probe")
    lab.ssh("backup1", "sudo runuser -u postgres -- pgbackrest --stanza=talentsphere check")
    passed = tsdeploy(lab, "drill")
    result = json.loads(lab.ssh("backup1", "sudo cat /var/lib/tsdeploy/drill/last.json"))
    assert result["passed"] is True and result["error"] is None, result
    assert result["rows"].get("jobs", 0) > 0 and result["indexes_valid"] == result["indexes_expected"] > 0, result
    assert result["recovery_point"], result
    print(f"drill: label {result['backup_label']}, recovery point {result['recovery_point']}, restore "
          f"{result['restore_seconds']} s, whole drill {result['seconds']} s, {result['tables']} tables")
    assert "passed" in passed.stdout.lower()

    # The largest file of the newest backup: flip bytes in its middle, keep a copy to put back afterwards.
    victim = lab.ssh("backup1", "sudo find /var/lib/pgbackrest/backup -type f -path '*/2*' -printf '%s %p\\n' "
                                "| sort -n | tail -1 | cut -d' ' -f2-").strip()
    assert victim, "no backup file found in the repository"
    lab.ssh("backup1", f"sudo cp -p '{victim}' /root/drill-victim && size=$(sudo stat -c %s '{victim}') && "
                       f"printf 'corrupted by the e2e test' | sudo dd of='{victim}' bs=1 seek=$((size / 2)) "
                       "conv=notrunc status=none")
    try:
        failed = tsdeploy(lab, "drill", check=False)
        result = json.loads(lab.ssh("backup1", "sudo cat /var/lib/tsdeploy/drill/last.json"))
        print(f"corrupted {victim}: drill exit {failed.returncode}, error: {result['error']}")
        assert failed.returncode != 0
        assert result["passed"] is False and result["error"], result
        assert result["error"] in failed.stdout + failed.stderr
        scratch = lab.ssh("backup1", "sudo find /var/lib/pgbackrest-drill -mindepth 1 -maxdepth 1 2>/dev/null | wc -l")
        assert scratch.strip() in ("", "0"), "the failed drill left its scratch cluster behind"
    finally:
        lab.ssh("backup1", f"sudo mv /root/drill-victim '{victim}'")
    tsdeploy(lab, "drill")


def test_a_restore_to_a_time_brings_back_every_write_before_it_and_none_after(lab: Lab, employer: str) -> None:
    with lab.traffic(READS, workers=6, write=job_writes(employer, "Backup probe"), pace=PACE) as traffic:
        time.sleep(8)
        tsdeploy(lab, "backup", "--type", "full")
        time.sleep(8)
        target_at = time.monotonic()
        target = wall(traffic, target_at)
        time.sleep(8)
        traffic.stop()
    before_t = [r.created for r in traffic.writes() if r.created and r.at < target_at]
    after_t = [r.created for r in traffic.writes() if r.created and r.at - r.seconds > target_at]
    assert before_t and after_t, "the traffic wrote nothing on one side of T"
    lab.ssh("db1", f"{PSQL} \"TRUNCATE jobs CASCADE\"")  # the mistake
    assert present(lab, before_t) == set()

    listed = tsdeploy(lab, "backups")
    assert "full" in listed.stdout
    refused = tsdeploy(lab, "restore", "--to", target.isoformat(), check=False)
    assert refused.returncode != 0 and "--yes" in refused.stdout + refused.stderr
    started, started_wall = time.monotonic(), datetime.datetime.now(datetime.UTC)
    with lab.traffic(READS, workers=4, write=job_writes(employer, "Backup probe"), pace=PACE) as during:
        tsdeploy(lab, "restore", "--to", target.isoformat(), "--yes")
        restored_at = time.monotonic()
        time.sleep(5)
        during.stop()
    seconds = restored_at - started
    back = present(lab, before_t + after_t, created_before=started_wall)
    missing = sorted(set(before_t) - back)
    resurrected = sorted(set(after_t) & back)
    after_restore = [r.created for r in during.writes() if r.created and r.at - r.seconds > restored_at]
    lost_after = sorted(set(after_restore) - present(lab, after_restore))
    print(f"restore to {target.isoformat()}: {seconds:.0f} s; {len(before_t)} jobs answered before T, "
          f"{len(missing)} missing; {len(after_t)} sent after T, {len(resurrected)} back; during the restore "
          f"{during.summary()}; {len(after_restore)} jobs written after it, {len(lost_after)} lost")
    assert missing == [] and resurrected == []
    assert after_restore and lost_after == []
    # Errors while the app tier is stopped are expected (the restore says so); each is an answer, not a hang.
    assert all(r.status for r in during.snapshot()), during.summary()


def test_after_losing_the_db_host_a_fresh_one_is_restored_from_the_repository(lab: Lab, employer: str) -> None:
    with lab.traffic(READS, workers=6, write=job_writes(employer, "Backup probe"), pace=PACE) as traffic:
        # Longer than archive_timeout: some of these writes reached the archive, the newest may not have.
        time.sleep(ARCHIVE_TIMEOUT + 2 * PUSH_MARGIN)
        lost_at = time.monotonic()
        subprocess.run([TSDEPLOY, "lab", "rebuild", "--name", lab.lab.name, "db1"], check=True,
                       capture_output=True, text=True, timeout=600)
        traffic.stop()
    written = [r for r in traffic.writes() if r.created and r.at < lost_at]
    last_write = max(r.at for r in written)
    started = time.monotonic()
    deployed = subprocess.run([TSDEPLOY, "deploy", str(lab.lab.inventory_dir)], capture_output=True, text=True,
                              check=False, timeout=1800)
    print(f"deploy of the fresh db1 -> {deployed.returncode}\n{deployed.stderr[-3000:]}")
    # The fresh cluster is not the one the repository holds: the deploy installs and configures db1, then stops
    # at the stanza check rather than report a host that archives nothing as deployed, and says what to do.
    assert deployed.returncode != 0
    assert "tsdeploy restore INVENTORY --latest --yes" in deployed.stderr, deployed.stderr[-6000:]
    deploy_seconds = time.monotonic() - started
    tsdeploy(lab, "restore", "--latest", "--yes")
    seconds = time.monotonic() - started
    again = subprocess.run([TSDEPLOY, "deploy", str(lab.lab.inventory_dir)], capture_output=True, text=True,
                           check=False, timeout=1800)
    assert again.returncode == 0, again.stderr[-6000:]
    back = present(lab, [r.created for r in written])
    lost = [r for r in written if r.created not in back]
    kept = [r for r in written if r.created in back]
    recovery_point = max(r.at for r in kept) if kept else None
    rpo = last_write - recovery_point if recovery_point is not None else None
    print(f"db1 lost: {len(written)} jobs answered before, {len(lost)} lost (RPO {rpo} s of writes); recovery "
          f"time {seconds:.0f} s (fresh deploy {deploy_seconds:.0f} s, restore {seconds - deploy_seconds:.0f} s)")
    assert kept, "nothing came back"
    assert all(r.at >= recovery_point for r in lost), "a write older than the recovery point was lost"
    assert rpo is not None and rpo <= ARCHIVE_TIMEOUT + PUSH_MARGIN
    status, _ = lab.request("GET", "/api/jobs?per_page=1")
    assert status == 200
    # Archiving works again on the restored cluster, and the repository agrees.
    lab.ssh("backup1", "sudo runuser -u postgres -- pgbackrest --stanza=talentsphere check")
