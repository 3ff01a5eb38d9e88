"""Stopping lab hosts by PID: only the processes the lab recorded, never a process that reused a PID."""

import os
import subprocess

from tsdeploy.lab import host
from tsdeploy.lab.state import HostState


def _host(**pids):
    return HostState(name="db1", address="198.18.9.10", machine="ts9-db1", groups=["db"], **pids)


def test_a_process_that_is_not_the_hosts_nspawn_is_not_taken_for_it():
    assert not host.is_running(os.getpid(), "ts9-db1")
    assert host.find_pids("ts9-no-such-machine") == []


def test_start_ticks_identify_a_live_process_and_vanish_with_it():
    child = subprocess.Popen(["sleep", "30"])
    ticks = host.start_ticks(child.pid)
    assert ticks is not None and host.start_ticks(child.pid) == ticks
    child.kill()
    child.wait()
    assert host.start_ticks(child.pid) is None


def test_stopping_a_host_with_nothing_running_returns_at_once():
    host.stop(_host(pid=None, init_pid=None, init_started=None), timeout=0.5)


def test_an_orphaned_host_init_is_told_to_halt_and_stops():
    orphan = subprocess.Popen(["sleep", "30"])  # SIGRTMIN+3 (systemd's "halt") ends it like it ends systemd
    host.stop(_host(init_pid=orphan.pid, init_started=host.start_ticks(orphan.pid)), timeout=5)
    assert orphan.wait(timeout=5) != 0


def test_a_recorded_pid_reused_by_another_process_is_left_alone():
    survivor = subprocess.Popen(["sleep", "30"])
    try:
        stale = host.start_ticks(survivor.pid) - 1  # same PID, different start time: not the host's systemd
        host.stop(_host(init_pid=survivor.pid, init_started=stale), timeout=0.5)
        assert survivor.poll() is None
    finally:
        survivor.kill()
        survivor.wait()
