"""Which redis.conf directives Redis changes at runtime, and how a rendered redis.conf differs from the live server.

Pure functions (no pyinfra): `live.py` embeds their results in the commands it runs on the cache host, and
tests/unit/test_restarts.py checks them against a real redis-server.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: Directives the deploy applies to the running Redis with `CONFIG SET` (Redis 7 can change them at runtime;
#: with `enable-protected-configs no`, as here). appendonly yes is switched live by `live._SWITCH` (the AOF
#: must be written from memory before anything restarts).
RUNTIME_SETTABLE = frozenset({
    "protected-mode", "timeout", "tcp-keepalive", "loglevel", "maxmemory", "maxmemory-policy", "save",
    "appendonly", "appendfsync", "maxclients", "slowlog-log-slower-than", "slowlog-max-len",
    "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "maxmemory-samples", "hz", "latency-tracking",
    # TLS comes up beside a running plain-text listener (the app hosts switch to it during the same deploy);
    # setting a certificate file, even to the same path, makes Redis load the certificate and key again.
    "tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-auth-clients", "tls-protocols", "tls-port",
})
#: Directives that need a restart, and why (any directive not in RUNTIME_SETTABLE needs one too).
RESTART_WHY = {
    # Redis 7 could CONFIG SET bind and port, but a listener is only changed together with a restart: the app
    # and the firewall follow the inventory, not a half-applied live change.
    "bind": "the listening addresses change only with a restart",
    "port": "the listening port changes only with a restart",
    "unixsocket": "Redis reads it only at start",
    "unixsocketperm": "Redis reads it only at start",
    "aclfile": "Redis reads the ACL file's path only at start",
    "dir": "a protected config (enable-protected-configs no): set only at start",
    "dbfilename": "a protected config (enable-protected-configs no): set only at start",
    "tcp-backlog": "Redis reads it only at start",
    "supervised": "Redis reads it only at start",
    "daemonize": "Redis reads it only at start",
    "pidfile": "Redis reads it only at start",
    "logfile": "Redis reads it only at start",
    "databases": "Redis reads it only at start",
    "enable-protected-configs": "immutable at runtime",
    "enable-debug-command": "immutable at runtime",
    "enable-module-command": "immutable at runtime",
}
_MEMORY = re.compile(r"^(\d+)(k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_UNITS = {None: 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
_MEMORY_DIRECTIVES = frozenset({"maxmemory"})
_BOOLEAN = {"yes": "yes", "no": "no"}


class Change(NamedTuple):
    name: str
    running: str
    new: str

    def line(self, how: str) -> str:
        return f"{self.name}: {self.running or '(empty)'} -> {self.new} ({how})"


def runtime_settable(name: str) -> bool:
    """Whether the deploy applies `name` with CONFIG SET (else the directive needs a restart)."""
    return name.lower() in RUNTIME_SETTABLE


def restart_why(name: str) -> str:
    if name.lower() == "tls-port":
        return "the plain-text listener holds the port until Redis restarts with port 0"
    return RESTART_WHY.get(name.lower(), "not changed at runtime by the deploy")


def parse_conf(text: str) -> dict[str, str]:
    """redis.conf's directives, lower-case name -> arguments joined by one space, quotes removed; last wins."""
    directives: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        directives[name.lower()] = " ".join(part.strip('"') for part in rest.split())
    return directives


def config_get_form(name: str, value: str) -> str:
    """A redis.conf value as CONFIG GET answers it: memory sizes in bytes, yes/no in lower case.

    >>> config_get_form("maxmemory", "256mb")
    '268435456'
    """
    if name in _MEMORY_DIRECTIVES:
        match = _MEMORY.match(value.strip())
        if match:
            unit = match.group(2).lower() if match.group(2) else None
            return str(int(match.group(1)) * _UNITS[unit])
    return _BOOLEAN.get(value.lower(), value)


def wanted(conf_text: str) -> dict[str, str]:
    """The rendered redis.conf as CONFIG GET would answer it for a server running that file."""
    return {name: config_get_form(name, value) for name, value in parse_conf(conf_text).items()}


def parse_config_get(lines: list[str]) -> dict[str, str]:
    """`redis-cli CONFIG GET ...` output (name and value on alternate lines) as a mapping."""
    return {lines[i].lower(): lines[i + 1] for i in range(0, len(lines) - 1, 2)}


def diff(wanted_values: dict[str, str], live: dict[str, str]) -> tuple[list[Change], list[Change]]:
    """(changes applied with CONFIG SET, changes that need a restart) between the wanted and the running values.

    A directive the live server does not answer for (absent from `live`) is not compared.
    """
    settable, restart = [], []
    for name, value in wanted_values.items():
        if name not in live or live[name] == value:
            continue
        change = Change(name, live[name], value)
        taken = name == "tls-port" and live.get("port") == value  # the plain listener holds the port until then
        (settable if runtime_settable(name) and not taken else restart).append(change)
    return settable, restart
