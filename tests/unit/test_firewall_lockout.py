"""The firewall never locks the deploy out: the address it connects from must be inside ssh_allow_from.

The decision (`lockout_problem`) is pure; the fact's command runs for real in a shell with the environment
sshd gives a session; the ssh rule's networks come from a real inventory through the context builder.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from roles.common.firewall import SshClientAddress, lockout_problem, ssh_sources
from tsdeploy.context import build_context
from tsdeploy.inventory import load

from test_inventory import write_inventory


@pytest.mark.parametrize(("client", "allow_from"), [
    ("10.0.0.7", ["10.0.0.0/24"]),
    ("198.18.0.1", ["192.0.2.0/24", "198.18.0.0/24"]),
    ("2001:db8::5", ["10.0.0.0/8", "2001:db8::/32"]),
    ("::ffff:10.0.0.7", ["10.0.0.0/24"]),  # an IPv4 client of a dual-stack sshd
    ("203.0.113.9", ["0.0.0.0/0", "::/0"]),  # the default: everyone
])
def test_a_deploy_from_inside_ssh_allow_from_is_not_refused(client: str, allow_from: list[str]) -> None:
    assert lockout_problem("db1", client, allow_from) is None


def test_a_deploy_from_outside_ssh_allow_from_is_refused_naming_variable_address_and_fix() -> None:
    problem = lockout_problem("db1", "203.0.113.9", ["10.0.0.0/8"])
    assert problem == (
        "db1: the firewall would lock this deploy out: the deploy connects from 203.0.113.9 (as db1 sees it, "
        "SSH_CONNECTION), which is not in ssh_allow_from ['10.0.0.0/8']; nothing was changed on any host; fix: add "
        "203.0.113.9/32 (or its network) to ssh_allow_from in the inventory, or deploy from an address inside it")


def test_an_ipv6_client_is_refused_by_ipv4_networks_with_a_128_bit_fix() -> None:
    problem = lockout_problem("lb1", "2001:db8::5", ["10.0.0.0/8"])
    assert problem is not None and "fix: add 2001:db8::5/128 (or its network)" in problem


def test_an_empty_ssh_allow_from_locks_everyone_out() -> None:
    assert lockout_problem("app1", "10.0.0.7", []) is not None


def test_an_unknown_client_address_is_not_refused() -> None:
    """Not over SSH (a local connector): no SSH connection can be dropped."""
    assert lockout_problem("app1", None, ["10.0.0.0/8"]) is None


@pytest.mark.parametrize(("ssh_connection", "expected"), [
    ("198.18.0.1 53122 198.18.0.10 22", "198.18.0.1"),
    ("2001:db8::5 40022 2001:db8::10 22", "2001:db8::5"),
    (None, None),
])
def test_the_fact_reads_the_first_field_of_ssh_connection(ssh_connection: str | None, expected: str | None) -> None:
    fact = SshClientAddress()
    env = {"PATH": "/usr/bin:/bin"} | ({"SSH_CONNECTION": ssh_connection} if ssh_connection else {})
    output = subprocess.run(["sh", "-c", fact.command()], env=env, capture_output=True, text=True, check=True)
    assert fact.process(output.stdout.splitlines()) == expected


def test_the_checked_networks_are_the_ssh_rules_sources_from_the_inventory(tmp_path: pathlib.Path) -> None:
    ctx = build_context(load(write_inventory(tmp_path, main_overrides={"ssh_allow_from": ["10.9.0.0/16"]})), "db1")
    assert ssh_sources(ctx) == ["10.9.0.0/16"]
    assert lockout_problem("db1", "10.9.3.4", ssh_sources(ctx)) is None
    assert lockout_problem("db1", "10.8.3.4", ssh_sources(ctx)) is not None
