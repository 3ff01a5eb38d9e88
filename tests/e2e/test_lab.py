"""Lab lifecycle on real systemd-nspawn hosts: up, what every host offers, reuse, and a down that leaves nothing.

The `lifecycle` lab is this module's own (split topology, Debian 12), so that removing it cannot disturb the
session's other labs; the last test removes it and checks the machine for leftovers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tsdeploy.lab import Lab, lab as lab_command
from tsdeploy.lab.host import find_pids
from tsdeploy.lab import sysctl
from tsdeploy.lab.state import lab_names
from tsdeploy.lab.topology import hosts_of

pytestmark = pytest.mark.e2e
HOSTS = [name for name, _ in hosts_of("split")]


@pytest.fixture(scope="module")
def lifecycle(lab_factory, tmp_path_factory):
    """The module's lab plus what the machine looked like before it was built."""
    before = {key: sysctl.read(key) for key in sysctl.MINIMUMS}
    try:
        yield lab_factory.start("lifecycle", "split", "bookworm", tmp_path_factory.mktemp("lifecycle-inventory")), before
    finally:
        lab_factory.stop("lifecycle")


@pytest.fixture(scope="module")
def lab(lifecycle):
    return lifecycle[0]


def ssh(lab: Lab, host: str, command: str) -> str:
    return lab.ssh(host, command).strip()


@pytest.mark.parametrize("host", HOSTS)
def test_host_boots_systemd_to_running_or_degraded(lab, host):
    assert ssh(lab, host, "systemctl is-system-running || true") in ("running", "degraded")
    assert ssh(lab, host, "systemd-detect-virt --container") == "systemd-nspawn"


@pytest.mark.parametrize("host", HOSTS)
def test_host_has_its_hostname_and_static_address(lab, host):
    assert ssh(lab, host, "hostname") == host
    assert f"inet {lab.hosts[host]}/24" in ssh(lab, host, "ip -4 -o addr show dev host0")


@pytest.mark.parametrize("host", HOSTS)
def test_deploy_user_has_passwordless_sudo(lab, host):
    assert ssh(lab, host, "whoami") == "deploy"
    assert ssh(lab, host, "sudo -n id -u") == "0"


@pytest.mark.parametrize("source, target", [("app1", "db1"), ("app2", "cache1"), ("lb1", "app1"), ("db1", "lb1")])
def test_hosts_reach_each_other_by_name(lab, source, target):
    assert ssh(lab, source, f"sudo -n ping -c1 -W2 {target} >/dev/null && echo reached") == "reached"


def test_hosts_reach_the_debian_mirror_through_nat(lab):
    assert ssh(lab, "app1", "sudo -n apt-get update -qq && echo updated") == "updated"


def test_hosts_have_their_own_machine_id_and_ssh_host_key(lab):
    ids = {host: ssh(lab, host, "cat /etc/machine-id") for host in HOSTS}
    keys = {host: ssh(lab, host, "cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2") for host in HOSTS}
    assert len(set(ids.values())) == len(HOSTS)
    assert len(set(keys.values())) == len(HOSTS)
    known_hosts = Path(lab.ssh_config).with_name("known_hosts").read_text()
    assert all(key in known_hosts for key in keys.values())


def test_state_secrets_and_keys_are_private(lab):
    state_dir = Path(lab.ssh_config).parent
    assert state_dir.stat().st_mode & 0o777 == 0o700
    for name in ("id_ed25519", "vault-pass", "secrets.json", "pki/ca.key", "pki/lb1.key"):
        assert (state_dir / name).stat().st_mode & 0o777 == 0o600, name


def test_ansible_connects_with_the_written_inventory_and_checks_host_keys(lab):
    venv_bin = Path(__file__).resolve().parents[2] / ".venv" / "bin"
    result = subprocess.run(
        [venv_bin / "ansible", "all", "-m", "ping", "-o"], cwd=lab.inventory_dir,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(HOSTS)


def test_second_up_reuses_the_running_hosts(lab):
    state_before = json.loads((Path(lab.ssh_config).parent / "state.json").read_text())
    lab.up("split", "bookworm", lab.inventory_dir)
    state_after = json.loads((Path(lab.ssh_config).parent / "state.json").read_text())
    assert {h: v["pid"] for h, v in state_after["hosts"].items()} == {
        h: v["pid"] for h, v in state_before["hosts"].items()
    }


def test_up_with_another_topology_is_refused_with_the_fix(lab):
    with pytest.raises(Exception, match="lab down --name"):
        lab.up("single", "bookworm", lab.inventory_dir)


def test_cli_status_and_url_describe_the_lab(lab):
    runner = CliRunner()
    status = runner.invoke(lab_command, ["status", "--name", lab.name])
    assert status.exit_code == 0, status.output
    assert sorted(line.split("\t")[1:] for line in status.output.splitlines()) == sorted(
        [host, address, "running"] for host, address in lab.hosts.items()
    )
    url = runner.invoke(lab_command, ["url", "--name", lab.name])
    assert url.output.strip() == f"https://{lab.hosts['lb1']}/"


def test_trixie_lab_runs_debian_13(trixie_lab):
    assert ssh(trixie_lab, "ts1", ". /etc/os-release && echo $VERSION_CODENAME") == "trixie"
    assert ssh(trixie_lab, "ts1", "systemctl is-system-running || true") in ("running", "degraded")


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(str(path))]


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, check=False).returncode == 0


def _nft_table_exists(table: str) -> bool:
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, check=False).returncode == 0


def test_lab_down_leaves_nothing_behind(lifecycle):
    lab, before = lifecycle
    state = lab.state
    assert state is not None
    state_dir, inventory_dir = Path(lab.ssh_config).parent, lab.inventory_dir
    lab.down()
    assert [pid for h in state.hosts.values() for pid in find_pids(h.machine)] == []
    assert _mounts_under(state_dir) == []
    assert not _link_exists(state.bridge)
    assert not any(_link_exists(f"vb-{h.machine}") for h in state.hosts.values())
    assert not _nft_table_exists(state.nft_table)
    assert not state_dir.exists()
    assert not inventory_dir.exists()
    # Kernel settings go back to their old values once no lab needs them; labs still up (other sessions) keep
    # them raised.
    for key, minimum in sysctl.MINIMUMS.items():
        if lab_names():
            assert sysctl.read(key) >= minimum, key
        else:
            assert sysctl.read(key) == before[key], key
