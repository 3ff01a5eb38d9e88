"""Lab networking: subnet allocation, names within Linux limits, and the nft ruleset the lab loads."""

import ipaddress
import shutil
import subprocess

import pytest

from tsdeploy.lab import network
from tsdeploy.lab.system import LabError


def test_default_lab_gets_198_18_0_0_24():
    assert network.allocate_index("lab", used={3, 5}) == 0
    assert network.subnet_for(0) == ipaddress.IPv4Network("198.18.0.0/24")


def test_other_labs_get_the_lowest_free_subnet_and_never_the_default_one():
    assert network.allocate_index("ci-split", used=set()) == 1
    assert network.allocate_index("ci-split", used={0, 1, 2, 4}) == 3


def test_subnets_stay_inside_198_18_0_0_15_and_do_not_overlap():
    subnets = [network.subnet_for(index) for index in range(network.MAX_LABS)]
    assert all(subnet.subnet_of(network.LAB_RANGE) for subnet in subnets)
    assert len(set(subnets)) == network.MAX_LABS
    assert network.subnet_for(256) == ipaddress.IPv4Network("198.19.0.0/24")


def test_an_index_outside_the_range_is_refused():
    with pytest.raises(LabError, match="outside 0..511"):
        network.subnet_for(512)


def test_allocation_fails_with_the_fix_when_every_subnet_is_taken():
    with pytest.raises(LabError, match="lab down"):
        network.allocate_index("another", used=set(range(network.MAX_LABS)))


def test_default_subnet_already_recorded_is_refused():
    with pytest.raises(LabError, match="198.18.0.0/24"):
        network.allocate_index("lab", used={0})


@pytest.mark.parametrize("index", [0, 9, 99, 511])
def test_bridge_names_fit_the_15_character_interface_limit(index):
    assert len(network.bridge_name(index)) <= 15


def test_veth_names_of_the_longest_host_fit_the_interface_limit():
    # systemd-nspawn names the host side of a bridged veth "vb-" + machine name.
    assert len(f"vb-ts{network.MAX_LABS - 1}-cache1") <= 15


def test_hosts_are_numbered_from_10_and_the_gateway_is_1():
    subnet = network.subnet_for(2)
    assert str(network.gateway(subnet)) == "198.18.2.1"
    assert [str(network.host_address(subnet, i)) for i in range(3)] == ["198.18.2.10", "198.18.2.11", "198.18.2.12"]


def test_ruleset_masquerades_only_the_lab_subnet_out_of_the_uplink():
    rules = network.nat_ruleset("tsdeploy_lab7", network.subnet_for(7), "tslab7", "eth0")
    assert 'ip saddr 198.18.7.0/24 oifname "eth0" masquerade' in rules
    assert 'iifname "tslab7" oifname "tslab7" accept' in rules
    assert 'iifname "tslab7" drop' in rules


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed on this machine")
def test_ruleset_is_valid_nft_syntax():
    rules = network.nat_ruleset("tsdeploy_lab7", network.subnet_for(7), "tslab7", "eth0")
    # -c checks the script without applying it; the leading "table" line makes "delete table" always valid.
    result = subprocess.run(["nft", "-c", "-f", "-"], input=rules, text=True, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
