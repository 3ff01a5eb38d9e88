"""Every host: SSH daemon, network sysctls, firewall, listening sockets, secrets in process lists."""

from __future__ import annotations

import json

import pytest

from verifyhosts import Target

# sshd -T prints the effective configuration (lower-case keys), after Include files and defaults.
SSHD_SETTINGS = [
    pytest.param("passwordauthentication", "no", marks=pytest.mark.control("sshd-27"), id="PasswordAuthentication"),
    pytest.param("permitrootlogin", "no", marks=pytest.mark.control("sshd-06"), id="PermitRootLogin"),
    pytest.param("permitemptypasswords", "no", marks=pytest.mark.control("sshd-28"), id="PermitEmptyPasswords"),
    pytest.param("allowtcpforwarding", "no", marks=pytest.mark.control("sshd-39"), id="AllowTcpForwarding"),
    pytest.param("allowagentforwarding", "no", marks=pytest.mark.control("sshd-40"), id="AllowAgentForwarding"),
    pytest.param("x11forwarding", "no", marks=pytest.mark.control("sshd-42"), id="X11Forwarding"),
]

# dev-sec linux-baseline values; these live in each network namespace, so they hold in containers too.
SYSCTLS = [
    pytest.param("net.ipv4.conf.all.rp_filter", 1, marks=pytest.mark.control("sysctl-02")),
    pytest.param("net.ipv4.conf.default.rp_filter", 1, marks=pytest.mark.control("sysctl-02")),
    pytest.param("net.ipv4.tcp_syncookies", 1, marks=pytest.mark.control("sysctl-11")),
    pytest.param("net.ipv4.conf.all.accept_source_route", 0, marks=pytest.mark.control("sysctl-13")),
    pytest.param("net.ipv4.conf.default.accept_source_route", 0, marks=pytest.mark.control("sysctl-13")),
    pytest.param("net.ipv6.conf.all.accept_source_route", 0, marks=pytest.mark.control("sysctl-13")),
    pytest.param("net.ipv6.conf.default.accept_source_route", 0, marks=pytest.mark.control("sysctl-13")),
    pytest.param("net.ipv4.conf.all.accept_redirects", 0, marks=pytest.mark.control("sysctl-14")),
    pytest.param("net.ipv4.conf.default.accept_redirects", 0, marks=pytest.mark.control("sysctl-14")),
    pytest.param("net.ipv4.conf.all.secure_redirects", 0, marks=pytest.mark.control("sysctl-15")),
    pytest.param("net.ipv4.conf.default.secure_redirects", 0, marks=pytest.mark.control("sysctl-15")),
    pytest.param("net.ipv4.conf.all.send_redirects", 0, marks=pytest.mark.control("sysctl-16")),
    pytest.param("net.ipv4.conf.default.send_redirects", 0, marks=pytest.mark.control("sysctl-16")),
    pytest.param("net.ipv4.conf.all.log_martians", 1, marks=pytest.mark.control("sysctl-17")),
    pytest.param("net.ipv4.conf.default.log_martians", 1, marks=pytest.mark.control("sysctl-17")),
]

# Reads /proc as root on the host and prints, per process, its command line and (outside the app's own
# units, whose environment legitimately holds the secrets) its environment. Nothing is written anywhere.
PROC_SCAN = r"""
import json, os
out = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f: cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
        with open(f'/proc/{pid}/cgroup') as f: cgroup = f.read()
        with open(f'/proc/{pid}/comm') as f: comm = f.read().strip()
        env = ''
        if 'talentsphere' not in cgroup:
            with open(f'/proc/{pid}/environ', 'rb') as f: env = f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        continue
    out.append({'pid': int(pid), 'comm': comm, 'cmdline': cmd, 'environ': env})
print(json.dumps(out))
"""


@pytest.mark.parametrize(("key", "expected"), SSHD_SETTINGS)
def test_sshd_effective_setting_is_hardened(any_host: Target, key: str, expected: str) -> None:
    effective = dict(line.split(" ", 1) for line in any_host.sudo_check("sshd -T").splitlines() if " " in line)
    assert effective.get(key) == expected, f"{any_host}: sshd {key} is {effective.get(key)!r}, expected {expected!r}"


@pytest.mark.control("sshd-19")
def test_sshd_allows_at_most_four_authentication_attempts(any_host: Target) -> None:
    effective = dict(line.split(" ", 1) for line in any_host.sudo_check("sshd -T").splitlines() if " " in line)
    assert int(effective["maxauthtries"]) <= 4, f"{any_host}: MaxAuthTries is {effective['maxauthtries']}"


@pytest.mark.control("sshd-05")
def test_sshd_config_is_root_owned_mode_0600(any_host: Target) -> None:
    with any_host.host.sudo():
        config = any_host.host.file("/etc/ssh/sshd_config")
        owner, mode = (config.user, config.group), config.mode
    assert (owner, oct(mode)) == (("root", "root"), "0o600"), f"{any_host}: sshd_config {owner} {oct(mode)}"


@pytest.mark.parametrize(("key", "expected"), SYSCTLS)
def test_network_sysctl_has_baseline_value(any_host: Target, key: str, expected: int) -> None:
    value = any_host.sudo_check("sysctl -n %s", key).strip()
    assert int(value) == expected, f"{any_host}: {key} = {value}, baseline wants {expected}"


@pytest.mark.control("ts-fw-01")
def test_nftables_drops_inbound_by_default(any_host: Target) -> None:
    ruleset = json.loads(any_host.sudo_check("nft -j list chains"))["nftables"]
    chains = [item["chain"] for item in ruleset if "chain" in item]
    input_chains = [chain for chain in chains if chain.get("hook") == "input" and chain.get("type") == "filter"]
    assert input_chains, f"{any_host}: no nftables filter chain hooks input"
    policies = {f"{c['family']} {c['table']} {c['name']}": c.get("policy") for c in input_chains}
    assert all(policy == "drop" for policy in policies.values()), f"{any_host}: input chain policies {policies}"


def _intended_listeners(target: Target) -> dict[int, set[str]]:
    """port -> addresses it may listen on ('*' = any), from the host's roles and the deploy's context."""
    ctx, private, loopback = target.ctx, target.address, {"127.0.0.1", "::1"}
    intended: dict[int, set[str]] = {ctx["common"]["ssh_port"]: {"*"}}
    if "db" in target.groups:
        intended[ctx["postgres"]["port"]] = loopback | {private}
    archiving = ctx["postgres"]["archiving"] if "db" in target.groups else None
    if archiving is not None and not archiving["local"]:
        intended[archiving["tls_port"]] = {private}  # pgBackRest's TLS server, for the backup host
    if "backup" in target.groups and not ctx["backup"]["local"]:
        intended[ctx["backup"]["tls_port"]] = {private}  # pgBackRest's TLS server, for the db host
    if "cache" in target.groups:
        intended[ctx["redis"]["port"]] = loopback | {private}
    if "pooler" in target.groups:
        intended[ctx["pgbouncer"]["port"]] = set(ctx["pgbouncer"]["listen"])
    if "app" in target.groups:
        intended[ctx["app"]["port"]] = {private}
    if "lb" in target.groups:
        intended[80] = intended[443] = {"*"}
        intended[int(ctx["nginx"]["status_listen"].rsplit(":", 1)[1])] = {"127.0.0.1"}  # stub_status
    exporters = ctx["exporters"]
    if exporters["enabled"]:
        for listen in (exporters["node_listen"], exporters["postgres_listen"] if exporters["postgres"] else None,
                       exporters["redis_listen"] if exporters["redis"] else None,
                       exporters["nginx_listen"] if exporters["nginx"] else None):
            if listen:
                intended[int(listen.rsplit(":", 1)[1])] = {private}
    if "monitor" in target.groups:
        monitor = ctx["monitor"]
        listens = [monitor["prometheus_listen"], monitor["alertmanager_listen"], monitor["blackbox_listen"]]
        for listen in listens + ([monitor["sink_listen"]] if monitor["sink"] else []):
            address, port = listen.rsplit(":", 1)
            intended[int(port)] = {address}
    return intended


@pytest.mark.control("ts-fw-05")
def test_host_listens_on_tcp_only_where_its_roles_need(any_host: Target) -> None:
    intended = _intended_listeners(any_host)
    unexpected = []
    for line in any_host.sudo_check("ss -H -t -l -n").splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        address = address.strip("[]").split("%")[0]
        allowed = intended.get(int(port), set())
        if not ("*" in allowed or address in allowed):
            unexpected.append(local)
    assert not unexpected, f"{any_host}: unexpected TCP listeners {unexpected} (intended: {intended})"


@pytest.mark.control("ts-secrets-01")
def test_no_secret_in_process_command_lines_or_foreign_environments(any_host: Target) -> None:
    any_host.require_secrets("the vault's secret values to search for")
    secrets = any_host.loaded.secrets
    processes = json.loads(any_host.sudo_check("python3 -c %s", PROC_SCAN))
    leaks = [f"{name} in {where} of pid {proc['pid']} ({proc['comm']})"
             for proc in processes for where in ("cmdline", "environ")
             for name, value in secrets.items() if value and value in proc[where]]
    assert processes and not leaks, f"{any_host}: " + "; ".join(leaks)
