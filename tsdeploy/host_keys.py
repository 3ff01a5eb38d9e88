"""Pinned SSH host keys: no deploy or verify talks to a host whose key the inventory does not already hold.

The first deploy sends the env file, the vault's secrets and the TLS keys; trusting whatever key answers on
first contact would send them to whoever answers. So every inventory names a known_hosts file, and every
host's address must have a key in it before anything connects:

- the inventory variable `ssh_known_hosts_file` (group_vars/all, a path relative to the inventory
  directory, or absolute): the main way, what inventories/production.example shows;
- or `-o UserKnownHostsFile=...` in `ansible_ssh_common_args` (how `tsdeploy lab up` pins its hosts' keys,
  and what ansible itself reads). When both are set they must name the same file.

Connections always check strictly (pyinfra's `ssh_strict_host_key_checking: yes`, OpenSSH's
`StrictHostKeyChecking yes`): an unknown key is refused, and a changed key for a known address is refused by
the SSH client whatever the setting. `tsdeploy deploy --trust-new-hosts` (and `verify`) records the keys of
hosts the file does not know yet with ssh-keyscan, prints each fingerprint (`ssh-keygen -lf`) to compare
out of band, and only appends: a key already in the file is never replaced.

Keys are looked up with paramiko's own known_hosts reader, the one pyinfra connects with, so "pinned" here
means exactly what the connection will accept (plain, comma-separated and hashed entries; `[address]:port`
for a port other than 22).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable

import click
from paramiko import HostKeys
from paramiko.ssh_exception import SSHException

from tsdeploy.ansible_inventory import Inventory

#: The inventory variable naming the known_hosts file (relative to the inventory directory, or absolute).
VARIABLE = "ssh_known_hosts_file"
#: The only host key checking a connection of the bundle uses.
STRICT = "yes"
TRUST_FLAG = "--trust-new-hosts"
KEYSCAN_TIMEOUT_S = 10


class HostKeyError(Exception):
    """Hosts cannot be connected to safely; the message names each host, its address, the file and the fix."""


@dataclasses.dataclass(frozen=True)
class Pin:
    """Where one host's key must be: its address (and port) in a known_hosts file."""

    host: str
    address: str
    port: int
    #: The known_hosts file the inventory names (absolute), or None when it names none.
    known_hosts: pathlib.Path | None
    #: How the inventory names it, for messages: "ssh_known_hosts_file (group_vars/all/main.yml:3)".
    named_by: str
    #: Problems with the inventory's SSH options themselves (a weaker StrictHostKeyChecking, two files).
    option_problems: tuple[str, ...] = ()

    @property
    def lookup_name(self) -> str:
        """The name a known_hosts entry carries for this host: `address`, or `[address]:port` off port 22."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def ssh_options(common_args: str) -> dict[str, str]:
    """`-o Key=Value` pairs from ansible_ssh_common_args, keys lower-cased (`-o Key Value` too)."""
    options: dict[str, str] = {}
    words = shlex.split(common_args)
    for flag, value in zip(words, words[1:]):
        if flag == "-o":
            key, separator, option = value.partition("=")
            if not separator:
                key, _, option = value.partition(" ")
            options[key.strip().lower()] = option.strip()
    return options


def _resolve(inventory: Inventory, value: str) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(value))
    return path if path.is_absolute() else (inventory.path / path).resolve()


def pin_of(inventory: Inventory, hostname: str) -> Pin:
    """The host's address, port and the known_hosts file its inventory names (no file is read)."""
    hostvars = inventory.hostvars[hostname]
    origins = inventory.origins.get(hostname, {})
    address = str(hostvars.get("ansible_host", hostname))
    port = int(hostvars.get("ansible_port", 22))
    options = ssh_options(str(hostvars.get("ansible_ssh_common_args", "")))
    problems = []
    strict = options.get("stricthostkeychecking")
    if strict is not None and strict.lower() != STRICT:
        problems.append(f"ansible_ssh_common_args ({origins.get('ansible_ssh_common_args', '?')}) sets "
                        f"StrictHostKeyChecking={strict}, which would accept a key nobody checked; fix: drop "
                        f"that option or set it to {STRICT} (connections always check strictly)")
    from_variable = hostvars.get(VARIABLE)
    from_args = options.get("userknownhostsfile")
    if from_variable is not None and (not isinstance(from_variable, str) or not from_variable.strip()):
        problems.append(f"{VARIABLE} = {from_variable!r} ({origins.get(VARIABLE, '?')}) is not a path; fix: set it "
                        "to the known_hosts file, relative to the inventory directory (e.g. known_hosts)")
        from_variable = None
    known_hosts, named_by = None, f"{VARIABLE} (not set)"
    if from_variable:
        known_hosts = _resolve(inventory, from_variable)
        named_by = f"{VARIABLE} ({origins.get(VARIABLE, '?')})"
    if from_args:
        other = _resolve(inventory, from_args.split()[0])
        if known_hosts is None:
            known_hosts = other
            named_by = f"ansible_ssh_common_args UserKnownHostsFile ({origins.get('ansible_ssh_common_args', '?')})"
        elif other != known_hosts:
            problems.append(f"{named_by} names {known_hosts} but ansible_ssh_common_args "
                            f"({origins.get('ansible_ssh_common_args', '?')}) names UserKnownHostsFile={other}; "
                            f"fix: keep one of them, or make both name the same file")
    return Pin(hostname, address, port, known_hosts, named_by, tuple(problems))


def _host_keys(path: pathlib.Path) -> HostKeys:
    keys = HostKeys()
    keys.load(str(path))
    return keys


def _name_file(inventory: Inventory) -> str:
    return (f"set `{VARIABLE}: known_hosts` for all hosts, in {inventory.path / 'group_vars/all/main.yml'} or under "
            "`all: vars:` in hosts.yml (a path relative to the inventory directory; "
            "see inventories/production.example/hosts.yml)")


def _fix(command: str) -> str:
    return (f"fix: run `{command} {TRUST_FLAG}` to record the keys the hosts present now (it prints each "
            "fingerprint: compare them with the hosts' consoles or provider), or add them yourself with "
            "`ssh-keyscan -p PORT ADDRESS >> FILE` after checking `ssh-keygen -lf` against a fingerprint "
            "obtained out of band")


def problems(inventory: Inventory, hosts: Iterable[str] | None = None, *, command: str = "tsdeploy deploy INVENTORY",
             ) -> list[str]:
    """Every host (of `hosts`, default all) that has no pinned key, as a sentence with the fix; [] = all pinned."""
    found: list[str] = []
    unpinned: list[Pin] = []
    loaded: dict[pathlib.Path, HostKeys | str] = {}
    for name in inventory.hosts if hosts is None else hosts:
        pin = pin_of(inventory, name)
        found += [f"{name} ({pin.address}): {problem}" for problem in pin.option_problems]
        if pin.known_hosts is None:
            found.append(
                f"{name} ({pin.address}): the inventory names no known_hosts file, so the host's key cannot be "
                f"checked; fix: {_name_file(inventory)}, then record the keys in it (below)")
            unpinned.append(pin)
            continue
        if pin.known_hosts not in loaded:
            try:
                loaded[pin.known_hosts] = _host_keys(pin.known_hosts)
            except FileNotFoundError:
                loaded[pin.known_hosts] = "does not exist"
            except (OSError, SSHException, ValueError) as error:
                loaded[pin.known_hosts] = f"cannot be read ({error})"
        keys = loaded[pin.known_hosts]
        if isinstance(keys, str):
            found.append(f"{name} ({pin.lookup_name}): the known_hosts file {pin.known_hosts} named by "
                         f"{pin.named_by} {keys}")
            unpinned.append(pin)
        elif keys.lookup(pin.lookup_name) is None:
            found.append(f"{name} ({pin.lookup_name}): no key for {pin.lookup_name} in the known_hosts file "
                         f"{pin.known_hosts} (named by {pin.named_by})")
            unpinned.append(pin)
    if unpinned:
        found.append(_fix(command))
    return found


def require_pinned(inventory: Inventory, hosts: Iterable[str] | None = None, *,
                   command: str = "tsdeploy deploy INVENTORY") -> None:
    """Raise HostKeyError, before anything connects, unless every host's key is pinned with strict checking."""
    if found := problems(inventory, hosts, command=command):
        raise HostKeyError("refusing to connect: SSH host keys are not pinned for every host (the deploy would "
                           "send secrets to whichever machine answers first):\n"
                           + "\n".join(f"- {line}" for line in found))


def keyscan(pins: list[Pin]) -> dict[str, list[str]]:
    """Each host's known_hosts lines as ssh-keyscan reads them now (host -> lines; empty when it did not answer).

    One ssh-keyscan per port, for every address at once (it asks them in parallel).
    """
    by_name: dict[str, list[str]] = {}
    for port in sorted({pin.port for pin in pins}):
        addresses = sorted({pin.address for pin in pins if pin.port == port})
        process = subprocess.run(["ssh-keyscan", "-T", str(KEYSCAN_TIMEOUT_S), "-p", str(port), *addresses],
                                 capture_output=True, text=True, check=False,
                                 timeout=KEYSCAN_TIMEOUT_S * (len(addresses) + 2))
        for line in process.stdout.splitlines():
            if line.strip() and not line.startswith("#"):
                by_name.setdefault(line.split()[0], []).append(line)
    return {pin.host: sorted(by_name.get(pin.lookup_name, [])) for pin in pins}


def fingerprints(lines: list[str]) -> list[str]:
    """`ssh-keygen -lf` of known_hosts lines: "256 SHA256:... address (ED25519)" each."""
    with tempfile.NamedTemporaryFile("w", prefix="tsdeploy-keys-", suffix=".known_hosts") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
        handle.flush()
        process = subprocess.run(["ssh-keygen", "-lf", handle.name], capture_output=True, text=True, check=True)
    return process.stdout.splitlines()


def _changed(pin: Pin, keys: HostKeys, lines: list[str]) -> list[str]:
    """The key types for which the host now presents another key than the one pinned."""
    pinned = keys.lookup(pin.lookup_name) or {}
    changed = []
    for line in lines:
        _, key_type, blob = line.split()[:3]
        if key_type in pinned and pinned[key_type].get_base64() != blob:
            changed.append(key_type)
    return changed


def trust_new_hosts(inventory: Inventory, hosts: Iterable[str] | None = None, *,
                    echo: Callable[[str], None] = print) -> list[str]:
    """Record, with ssh-keyscan, the key of every host its known_hosts file does not know yet; the hosts recorded.

    Only appends: a host already in the file is not rescanned into it. It is scanned, though, and a host
    presenting another key than the one pinned is refused (HostKeyError) before anything is written or sent.
    An inventory that names no known_hosts file is refused: where the keys go is the inventory's decision.
    """
    pins = [pin_of(inventory, name) for name in (inventory.hosts if hosts is None else hosts)]
    refused = [f"{pin.host} ({pin.address}): {problem}" for pin in pins for problem in pin.option_problems]
    refused += [f"{pin.host} ({pin.address}): the inventory names no known_hosts file to record its key in; fix: "
                f"{_name_file(inventory)}"
                for pin in pins if pin.known_hosts is None]
    if refused:
        raise HostKeyError("cannot record host keys:\n" + "\n".join(f"- {line}" for line in refused))
    scanned = keyscan(pins)
    files: dict[pathlib.Path, HostKeys] = {}
    for pin in pins:
        assert pin.known_hosts is not None
        if pin.known_hosts not in files:
            files[pin.known_hosts] = _host_keys(pin.known_hosts) if pin.known_hosts.is_file() else HostKeys()
    changed = [(pin, types) for pin in pins
               if (types := _changed(pin, files[pin.known_hosts], scanned[pin.host]))]  # type: ignore[index]
    if changed:
        raise HostKeyError(
            "refusing to connect: a host presents another key than the one pinned (the host was reinstalled, or "
            "something else answers at its address); the pinned key is kept:\n"
            + "\n".join(f"- {pin.host} ({pin.lookup_name}): {', '.join(types)} key differs from {pin.known_hosts}"
                        for pin, types in changed)
            + "\nfix: find out why out of band; only when the new key is the host's own, delete its line with "
              "`ssh-keygen -R ADDRESS -f FILE` and run again")
    new = [pin for pin in pins if files[pin.known_hosts].lookup(pin.lookup_name) is None]  # type: ignore[index]
    silent = [pin for pin in new if not scanned[pin.host]]
    if silent:
        raise HostKeyError("cannot record host keys: no SSH server answered ssh-keyscan at\n"
                           + "\n".join(f"- {pin.host} ({pin.lookup_name})" for pin in silent)
                           + "\nfix: check the address (ansible_host, ansible_port) and that sshd runs there")
    recorded: set[pathlib.Path] = set()
    for pin in new:
        assert pin.known_hosts is not None
        if files[pin.known_hosts].lookup(pin.lookup_name) is not None:
            continue  # another host name at the same address, recorded just above
        lines = scanned[pin.host]
        for fingerprint in fingerprints(lines):
            echo(f"trusting new host {pin.host} ({pin.lookup_name}): {fingerprint}")
        pin.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with pin.known_hosts.open("a") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        files[pin.known_hosts] = _host_keys(pin.known_hosts)
        recorded.add(pin.known_hosts)
    for path in sorted(recorded):
        echo(f"recorded in {path}: compare the fingerprints above with ones obtained out of band")
    return [pin.host for pin in new]


def require_for_command(inventory: Inventory, command: str, hosts: Iterable[str] | None = None, *,
                        trust_new: bool = False) -> None:
    """For `tsdeploy deploy`/`verify`: record new hosts' keys if asked, then refuse unless every key is pinned.

    Runs before the command touches any host; the refusal is a ClickException naming each host, its address,
    the file and the fix.
    """
    hosts = list(inventory.hosts if hosts is None else hosts)
    try:
        if trust_new:
            trust_new_hosts(inventory, hosts, echo=lambda line: click.echo(f"==> {line}", err=True))
        require_pinned(inventory, hosts, command=command)
    except HostKeyError as error:
        raise click.ClickException(str(error)) from None
