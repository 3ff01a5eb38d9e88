"""Pinned SSH host keys: nothing connects to a host whose key the inventory's known_hosts file does not hold.

The inventories are real (ansible-core reads them, test_inventory.write_inventory); the SSH server is a real
OpenSSH sshd on 127.0.0.1 with its own host key, reached by real ssh-keyscan, ssh-keygen, pyinfra (paramiko)
and OpenSSH's ssh with the verify suite's ssh_config.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner

from test_inventory import write_inventory
from tsdeploy import ROOT, deployment, host_keys, verify
from tsdeploy.inventory import load
from tsdeploy.pyinfra_inventory import groups, host_data

HOSTS = ("db1", "cache1", "app1", "app2", "lb1")
ADDRESSES = {"db1": "10.0.0.10", "cache1": "10.0.0.11", "app1": "10.0.0.12", "app2": "10.0.0.13", "lb1": "10.0.0.14"}
#: Not any host's key: what a machine impersonating a host would present.
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIC1YKy/r/o/r+oxKVuqrlBxWzzir2rqWpXJ6Lb42/3w"
needs_sshd = pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd") or os.geteuid() != 0,
                                reason="needs root and /usr/sbin/sshd (a real SSH server on 127.0.0.1)")


def inventory_dir(root: pathlib.Path, *, main: dict[str, Any] | None = None,
                  hosts: dict[str, Any] | None = None) -> pathlib.Path:
    """A split inventory whose hosts name no known_hosts file unless `main`/`hosts` say so."""
    overrides = {name: {"ansible_ssh_common_args": "-o IdentitiesOnly=yes"} | (hosts or {}) for name in HOSTS}
    inventory = write_inventory(root, host_overrides=overrides, main_overrides=main)
    (root / "vault-pass").chmod(0o600)
    return inventory


def problem_of(problems: list[str], host: str) -> str:
    """The one problem about `host` (problems are listed in inventory order)."""
    [found] = [problem for problem in problems if problem.startswith(f"{host} (")]
    return found


def key_lines(names: list[str], key: str = OTHER_KEY) -> str:
    return "".join(f"{name} {key}\n" for name in names)


# --- refusal before anything connects ---------------------------------------------------------------------------


def test_an_inventory_that_names_no_known_hosts_file_is_refused_naming_each_host_and_the_fix(tmp_path) -> None:
    inventory = load(inventory_dir(tmp_path))
    with pytest.raises(host_keys.HostKeyError) as raised:
        host_keys.require_pinned(inventory, command="tsdeploy deploy inventories/prod")
    message = str(raised.value)
    assert message.startswith("refusing to connect: SSH host keys are not pinned for every host")
    for name, address in ADDRESSES.items():
        assert (f"- {name} ({address}): the inventory names no known_hosts file, so the host's key cannot be "
                f"checked; fix: set `ssh_known_hosts_file: known_hosts` for all hosts, in "
                f"{inventory.path}/group_vars/all/main.yml or under `all: vars:` in hosts.yml" in message)
    assert "run `tsdeploy deploy inventories/prod --trust-new-hosts`" in message
    assert "ssh-keyscan -p PORT ADDRESS >> FILE" in message and "ssh-keygen -lf" in message


def test_a_known_hosts_file_that_does_not_exist_is_refused_naming_the_file_and_where_it_is_set(tmp_path) -> None:
    inventory = load(inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"}))
    where = inventory.origins["db1"]["ssh_known_hosts_file"]
    assert where.startswith("inventory/group_vars/all/main.yml:")
    assert problem_of(host_keys.problems(inventory), "db1") == (
        f"db1 (10.0.0.10): the known_hosts file {inventory.path / 'known_hosts'} named by "
        f"ssh_known_hosts_file ({where}) does not exist")


def test_a_known_hosts_file_missing_one_host_is_refused_naming_that_host_only(tmp_path) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"})
    (path / "known_hosts").write_text(key_lines([ADDRESSES[name] for name in HOSTS if name != "app2"]))
    inventory = load(path)
    with pytest.raises(host_keys.HostKeyError) as raised:
        host_keys.require_pinned(inventory)
    lines = str(raised.value).splitlines()[1:]
    where = inventory.origins["app2"]["ssh_known_hosts_file"]
    assert lines[0] == (f"- app2 (10.0.0.13): no key for 10.0.0.13 in the known_hosts file {path / 'known_hosts'} "
                        f"(named by ssh_known_hosts_file ({where}))")
    assert len(lines) == 2 and lines[1].startswith("- fix: run `tsdeploy deploy INVENTORY --trust-new-hosts`")


def test_with_a_key_for_every_address_the_inventory_passes(tmp_path) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"})
    (path / "known_hosts").write_text(key_lines(list(ADDRESSES.values())))
    assert host_keys.problems(load(path)) == []


def test_keys_are_looked_up_like_ssh_does_names_lists_hashed_entries_and_ports(tmp_path) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"}, hosts={"ansible_port": 2222})
    known_hosts = path / "known_hosts"
    # `name,address` lists (as the lab writes them), then hashed by ssh-keygen -H as many fleets keep them.
    known_hosts.write_text(key_lines([f"{name},[{address}]:2222" for name, address in ADDRESSES.items()]))
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert "10.0.0.10" not in known_hosts.read_text()
    assert host_keys.problems(load(path)) == []
    # A key for the address on port 22 is not a key for port 2222.
    known_hosts.write_text(key_lines(list(ADDRESSES.values())))
    assert problem_of(host_keys.problems(load(path)), "db1").startswith("db1 ([10.0.0.10]:2222): no key for "
                                                                        "[10.0.0.10]:2222 in the known_hosts file")


def test_the_lab_way_user_known_hosts_file_in_ansible_ssh_common_args_pins_too(tmp_path) -> None:
    known_hosts = tmp_path / "lab-known_hosts"
    known_hosts.write_text(key_lines([f"{name},{address}" for name, address in ADDRESSES.items()]))
    path = inventory_dir(tmp_path, hosts={"ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} "
                                                                     "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"})
    inventory = load(path)
    assert host_keys.problems(inventory) == []
    assert host_data(inventory, "db1")["ssh_known_hosts_file"] == str(known_hosts)


@pytest.mark.parametrize("weaker", ["no", "accept-new", "ask"])
def test_a_weaker_strict_host_key_checking_in_the_inventory_is_refused(tmp_path, weaker: str) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"},
                         hosts={"ansible_ssh_common_args": f"-o StrictHostKeyChecking={weaker}"})
    (path / "known_hosts").write_text(key_lines(list(ADDRESSES.values())))
    inventory = load(path)
    where = inventory.origins["db1"]["ansible_ssh_common_args"]
    assert where.startswith("inventory/hosts.yml:")
    assert problem_of(host_keys.problems(inventory), "db1") == (
        f"db1 (10.0.0.10): ansible_ssh_common_args ({where}) sets "
                           f"StrictHostKeyChecking={weaker}, which would accept a key nobody checked; fix: drop that "
                           "option or set it to yes (connections always check strictly)")


def test_two_different_files_named_by_the_variable_and_the_ssh_args_are_refused(tmp_path) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "known_hosts"},
                         hosts={"ansible_ssh_common_args": "-o UserKnownHostsFile=/etc/ssh/ssh_known_hosts"})
    (path / "known_hosts").write_text(key_lines(list(ADDRESSES.values())))
    inventory = load(path)
    problem = problem_of(host_keys.problems(inventory), "db1")
    assert problem.startswith(f"db1 (10.0.0.10): ssh_known_hosts_file ({inventory.origins['db1']['ssh_known_hosts_file']}) names "
                              f"{path / 'known_hosts'} but ansible_ssh_common_args (inventory/hosts.yml:")
    assert problem.endswith("names UserKnownHostsFile=/etc/ssh/ssh_known_hosts; fix: keep one of them, or make "
                            "both name the same file")


def test_pyinfra_host_data_carry_the_pinned_file_and_strict_checking(tmp_path) -> None:
    path = inventory_dir(tmp_path, main={"ssh_known_hosts_file": "keys/known_hosts"})
    data = dict(groups(load(path))["all"])
    for name in HOSTS:
        # Relative to the inventory directory, made absolute: pyinfra runs with the repository as its cwd.
        assert data[name]["ssh_known_hosts_file"] == str(path / "keys" / "known_hosts")
        # Never pyinfra's default (accept-new), whatever the inventory says.
        assert data[name]["ssh_strict_host_key_checking"] == "yes"


def test_deploy_refuses_before_building_or_connecting_anything(tmp_path) -> None:
    path = inventory_dir(tmp_path)
    result = CliRunner().invoke(deployment.deploy, [str(path)])
    assert result.exit_code == 1
    assert "Error: refusing to connect: SSH host keys are not pinned for every host" in result.output
    assert f"run `tsdeploy deploy {path} --trust-new-hosts`" in result.output
    assert "deploying with pyinfra" not in result.output and "app release" not in result.output


def test_verify_refuses_before_the_suite_starts(tmp_path) -> None:
    path = inventory_dir(tmp_path)
    report = tmp_path / "report"
    result = CliRunner().invoke(verify.verify, [str(path), "--report", str(report)])
    assert result.exit_code == 1
    assert "refusing to connect: SSH host keys are not pinned for every host" in result.output
    assert f"run `tsdeploy verify {path} --report {report} --trust-new-hosts`" in result.output
    assert not (report / "junit.xml").exists()


def test_the_pyinfra_inventory_file_refuses_too_so_pyinfra_by_hand_never_connects(tmp_path) -> None:
    path = inventory_dir(tmp_path)
    env = deployment.pyinfra_env(load(path))
    process = subprocess.run([str(deployment.pathlib.Path(deployment.sys.executable).parent / "pyinfra"),
                              str(deployment.PYINFRA_INVENTORY), "fact", "server.Hostname", "-y"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert process.returncode != 0
    assert "HostKeyError: refusing to connect: SSH host keys are not pinned for every host" in process.stderr
    assert "Connecting to hosts" not in process.stderr


def test_the_verify_suite_refuses_an_unpinned_inventory_when_run_directly(tmp_path) -> None:
    path = inventory_dir(tmp_path)
    process = subprocess.run([deployment.sys.executable, "-m", "pytest", *verify.PLUGINS, str(verify.SUITE_DIR),
                              f"--inventory={path}", "-p", "no:cacheprovider", "-q", f"--rootdir={ROOT}"],
                             cwd=ROOT, env=os.environ | verify.PLUGIN_ENV, capture_output=True, text=True,
                             timeout=300, check=False)
    assert process.returncode == pytest.ExitCode.USAGE_ERROR, process.stdout + process.stderr
    assert "refusing to connect: SSH host keys are not pinned for every host" in process.stderr


# --- a real sshd: recording new keys, refusing changed ones, pyinfra and ssh connecting strictly --------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """OpenSSH's sshd on 127.0.0.1:<free port> with its own host key; root logs in with `client_key`."""
    root = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "client_key")], check=True)
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    port = _free_port()
    (root / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {root / 'host_key'}\nPidFile none\nUsePAM no\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPermitRootLogin prohibit-password\nStrictModes no\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    public = (root / "host_key.pub").read_text().split()
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(root / "host_key.pub")], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    try:
        yield {"port": port, "key": f"{public[0]} {public[1]}", "fingerprint": fingerprint,
               "client_key": root / "client_key"}
    finally:
        server.terminate()
        server.wait(timeout=10)


def sshd_inventory(root: pathlib.Path, sshd: dict[str, Any]) -> pathlib.Path:
    """Every host of the split inventory answers at the real sshd; the inventory pins `known_hosts`."""
    return inventory_dir(root, main={"ssh_known_hosts_file": "known_hosts"},
                         hosts={"ansible_host": "127.0.0.1", "ansible_port": sshd["port"], "ansible_user": "root",
                                "ansible_ssh_private_key_file": str(sshd["client_key"])})


@needs_sshd
def test_trust_new_hosts_records_the_key_with_its_fingerprint_and_then_the_hosts_are_pinned(tmp_path, sshd) -> None:
    path = sshd_inventory(tmp_path, sshd)
    inventory = load(path)
    printed: list[str] = []
    assert host_keys.trust_new_hosts(inventory, echo=printed.append) == inventory.hosts
    name = f"[127.0.0.1]:{sshd['port']}"
    assert (path / "known_hosts").read_text() == f"{name} {sshd['key']}\n"  # one address, recorded once
    assert printed[0] == f"trusting new host {inventory.hosts[0]} ({name}): 256 {sshd['fingerprint']} {name} (ED25519)"
    assert printed[-1] == f"recorded in {path / 'known_hosts'}: compare the fingerprints above with ones obtained out of band"
    assert host_keys.problems(inventory) == []
    # Run again: nothing new, nothing appended.
    assert host_keys.trust_new_hosts(inventory, echo=printed.append) == []
    assert (path / "known_hosts").read_text() == f"{name} {sshd['key']}\n"


@needs_sshd
def test_a_changed_key_is_refused_and_the_pinned_one_kept_even_with_trust_new_hosts(tmp_path, sshd) -> None:
    path = sshd_inventory(tmp_path, sshd)
    pinned = f"[127.0.0.1]:{sshd['port']} {OTHER_KEY}\n"
    (path / "known_hosts").write_text(pinned)
    result = CliRunner().invoke(deployment.deploy, [str(path), "--trust-new-hosts"])
    assert result.exit_code == 1
    assert ("Error: refusing to connect: a host presents another key than the one pinned (the host was reinstalled, "
            "or something else answers at its address); the pinned key is kept:") in result.output
    assert f"- app1 ([127.0.0.1]:{sshd['port']}): ssh-ed25519 key differs from {path / 'known_hosts'}" in result.output
    assert "deploying with pyinfra" not in result.output
    assert (path / "known_hosts").read_text() == pinned


@needs_sshd
def test_pyinfra_connects_with_the_pinned_key_and_refuses_a_changed_one(tmp_path, sshd) -> None:
    path = sshd_inventory(tmp_path, sshd)
    inventory = load(path)
    (path / "known_hosts").write_text(f"[127.0.0.1]:{sshd['port']} {sshd['key']}\n")
    hostname = socket.gethostname()
    assert deployment.read_fact(inventory, "server.Hostname", limit=("db1",)) == {"db1": hostname}
    (path / "known_hosts").write_text(f"[127.0.0.1]:{sshd['port']} {OTHER_KEY}\n")
    with pytest.raises(click.ClickException) as raised:
        deployment.read_fact(inventory, "server.Hostname", limit=("db1",))
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in raised.value.message
    assert "SSH host key error (Host key for 127.0.0.1 does not match.)" in raised.value.message


def _verifyhosts():
    spec = importlib.util.spec_from_file_location("verifyhosts", ROOT / "tests" / "infra" / "verifyhosts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("verifyhosts", module)  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@needs_sshd
def test_the_verify_suite_ssh_config_uses_the_pinned_file_strictly(tmp_path, sshd) -> None:
    path = sshd_inventory(tmp_path, sshd)
    known_hosts = path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd['port']} {sshd['key']}\n")
    # A short directory, as the suite's own: the ssh_config's ControlPath must stay under 108 bytes.
    config_dir = pathlib.Path(tempfile.mkdtemp(prefix="tsdeploy-verify-ssh-"))
    config = _verifyhosts().write_ssh_config(load(path), config_dir)
    assert f"UserKnownHostsFile {known_hosts}\n    StrictHostKeyChecking yes\n" in config.read_text()

    def ssh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", "-F", str(config), "-o", "ControlMaster=no", *args, "db1", "echo pinned"],
                              capture_output=True, text=True, timeout=60, check=False)

    connected = ssh()
    assert connected.stdout == "pinned\n", connected.stderr
    known_hosts.write_text(f"[127.0.0.1]:{sshd['port']} {OTHER_KEY}\n")
    refused = ssh()
    assert refused.returncode == 255 and refused.stdout == ""
    assert "Host key verification failed" in refused.stderr
    known_hosts.write_text("")
    assert "Host key verification failed" in ssh().stderr  # an unknown key is not accepted either
    shutil.rmtree(config_dir)
