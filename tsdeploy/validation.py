"""Validate a loaded inventory before any connection: every problem at once, each with its fix.

Each problem names the host, the variable, where its value came from (file:line, or the role default), the
bad value and how to fix it. Secrets are never echoed: a bad secret is described, not shown.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pathlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tsdeploy.defaults import role_defaults
from tsdeploy.units import parse_size

if TYPE_CHECKING:
    from tsdeploy.inventory import Inventory

#: A check returns None when the value is fine, else (what is wrong, how to fix it).
Check = Callable[[Any], "tuple[str, str] | None"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
#: Redis's maxmemory-policy values (https://redis.io/docs/latest/develop/reference/eviction/), which Render's
#: Key Value also takes as its Blueprint `maxmemoryPolicy`. The app is correct with the ones that evict only
#: keys with a TTL (every cache entry has one; its generation counters and view buffer have none) ...
REDIS_EVICTION_POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
_EVICTS_APP_STATE = ("may evict the app's keys without a TTL (cache generation counters, view-count buffer): "
                     "stale entries would be served after an invalidation and buffered views lost")
#: ... and serves wrong data with the others (refused, with the reason).
REDIS_REFUSED_POLICIES = {
    "allkeys-lru": _EVICTS_APP_STATE,
    "allkeys-lfu": _EVICTS_APP_STATE,
    "allkeys-random": _EVICTS_APP_STATE,
    "noeviction": ("refuses writes once memory is full while cache entries stay: an invalidation (INCR) would "
                   "be refused and old entries served until their TTL ends"),
}


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "is not a whole number", f"set a whole number >= {minimum}"
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            return f"is out of range", f"set a whole number {bounds}"
        return None
    return check


def _number(value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return "is not a non-negative number", "set seconds as a number, e.g. 1.0"
    return None


def _size(value: Any) -> tuple[str, str] | None:
    try:
        parse_size(value)
    except ValueError:
        return "is not a size", "write a positive number with a unit, e.g. 4GB or 512MB"
    return None


def _address(value: Any) -> tuple[str, str] | None:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return "is not an IP address", "set the host's private IPv4/IPv6 address, e.g. 10.0.0.5"
    return None


def _first_bad_network(items: list[Any]) -> tuple[str, str] | None:
    """The first item that is not an address or a network with its host bits clear (10.0.0.1/24 is a typo)."""
    for item in items:
        try:
            ipaddress.ip_network(str(item), strict=True)
        except ValueError:
            return f"contains {item!r}, not a network in CIDR form", "use the network address, e.g. 10.0.0.0/8"
    return None


def _cidr_list(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, list) or not value:
        return "is not a non-empty list of CIDRs", "write a YAML list, e.g. [\"10.0.0.0/8\"]"
    return _first_bad_network(value)


def _optional_cidr_list(value: Any) -> tuple[str, str] | None:
    # An empty list is the secure default (nobody), so only the type and the entries are checked.
    if not isinstance(value, list):
        return "is not a list of CIDRs", "write a YAML list, e.g. [\"10.0.0.0/8\"], or [] for nobody"
    return _first_bad_network(value)


def _identifier(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        return "is not a lower-case identifier", "use letters, digits and _ (start with a letter), <= 63 chars"
    return None


def _choice(*options: str) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if value not in options:
            return "is not supported", f"use one of: {', '.join(options)}"
        return None
    return check


def _secret(min_length: int) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, str) or len(value) < min_length:
            return (f"is missing or shorter than {min_length} characters",
                    f"put a random value of >= {min_length} characters in the vault file "
                    "(e.g. `openssl rand -base64 32`)")
        return None
    return check


def _hostname(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _HOSTNAME.match(value):
        return "is not a DNS name", "set the public host name, e.g. jobs.example.com"
    return None


def _key_prefix(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not _KEY_PREFIX.match(value):
        return "is not a key prefix", "use 1-32 letters, digits or _.:- (no glob characters), e.g. ts:"
    return None


def _eviction_policy(value: Any) -> tuple[str, str] | None:
    # Refused rather than warned about: these policies make the app serve stale data or lose views when Redis
    # is full, which is wrong data, not a tuning trade-off. Under a volatile-* policy Redis refuses a write
    # only once it has evicted every key with a TTL, so no cache entry is left to be stale.
    if not isinstance(value, str) or value not in (*REDIS_EVICTION_POLICIES, *REDIS_REFUSED_POLICIES):
        return "is not a Redis maxmemory-policy", f"use one of: {', '.join(REDIS_EVICTION_POLICIES)}"
    if value in REDIS_REFUSED_POLICIES:
        return (REDIS_REFUSED_POLICIES[value],
                "use volatile-lru (the default) or another volatile-* policy: every cache entry has a TTL, so "
                "they evict cache entries only")
    return None


def _local_file(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, str) or not pathlib.Path(value).is_file():
        return "is not a readable file on the control node", "point it at the PEM file (outside the repository)"
    return None


@dataclasses.dataclass(frozen=True)
class Rule:
    """A variable, the groups whose hosts need it (empty = every host), its check, and whether it is secret."""

    name: str
    groups: tuple[str, ...]
    check: Check
    secret: bool = False


_ALL: tuple[str, ...] = ()
_DB_USERS = ("db", "app")
_CACHE_USERS = ("cache", "app")

RULES: tuple[Rule, ...] = (
    Rule("private_address", _ALL, _address),
    Rule("host_memory", _ALL, _size),
    Rule("host_cpus", _ALL, _integer(1, 1024)),
    Rule("debian_release", _ALL, _choice("bookworm", "trixie")),
    Rule("deploy_user", _ALL, _identifier),
    Rule("ssh_allow_from", _ALL, _cidr_list),
    Rule("tls_ca_cert_file", ("db", "app", "lb"), _local_file),
    Rule("tls_cert_file", ("db", "lb"), _local_file),
    Rule("tls_key_file", ("db", "lb"), _local_file),
    Rule("postgresql_db_name", _DB_USERS, _identifier),
    Rule("postgresql_app_user", _DB_USERS, _identifier),
    Rule("postgresql_app_password", _DB_USERS, _secret(16), secret=True),
    Rule("postgresql_profile", ("db",), _choice("web", "oltp", "dw", "desktop", "mixed")),
    Rule("postgresql_storage", ("db",), _choice("ssd", "hdd", "san", "nvme")),
    Rule("postgresql_connection_headroom", ("db",), _integer(0, 10000)),
    Rule("redis_maxmemory", ("cache",), _size),
    Rule("redis_maxmemory_policy", ("cache",), _eviction_policy),
    Rule("redis_app_user", _CACHE_USERS, _identifier),
    Rule("redis_app_password", _CACHE_USERS, _secret(16), secret=True),
    Rule("redis_admin_password", ("cache",), _secret(16), secret=True),
    Rule("redis_key_prefix", _CACHE_USERS, _key_prefix),
    Rule("app_port", ("app", "lb"), _integer(1, 65535)),
    Rule("app_workers", ("app", "db"), _integer(0, 256)),
    Rule("app_threads", ("app",), _integer(1, 32)),
    Rule("app_db_pool_size", ("app", "db"), _integer(1, 1000)),
    Rule("app_db_max_overflow", ("app", "db"), _integer(0, 1000)),
    Rule("app_db_pool_timeout", ("app",), _integer(1, 3600)),
    Rule("app_db_pool_recycle", ("app",), _integer(1, 86400)),
    Rule("app_slow_query_threshold", ("app", "db"), _number),
    Rule("app_secret_key", ("app",), _secret(32), secret=True),
    Rule("app_releases_keep", ("app",), _integer(1, 100)),
    Rule("nginx_server_name", ("lb",), _hostname),
    Rule("nginx_metrics_allow", ("lb",), _optional_cidr_list),
)


def _topology_problems(inventory: Inventory, hosts_file: str) -> list[str]:
    problems = []
    for group in ("db", "cache", "app", "lb"):
        if not inventory.hosts_in(group):
            problems.append(f"group {group!r} has no hosts ({hosts_file}); fix: add at least one host to it")
    for group, what in (("db", "PostgreSQL replication"), ("cache", "Redis replication")):
        if len(inventory.hosts_in(group)) > 1:
            problems.append(
                f"group {group!r} has {len(inventory.hosts_in(group))} hosts ({hosts_file}): {what} is not "
                f"supported yet; fix: keep exactly one host in {group!r}")
    return problems


def _address_problems(inventory: Inventory, merged: dict[str, dict[str, Any]]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for host in inventory.hosts:
        address = merged[host].get("private_address")
        if address in seen and seen[address] != host:
            problems.append(f"{host}: private_address {address!r} ({inventory.origins[host].get('private_address')})"
                            f" is also {seen[address]}'s; fix: give every host its own private address")
        seen.setdefault(address, host)
    return problems


def _threads_problems(inventory: Inventory, merged: dict[str, dict[str, Any]],
                      defaults: dict[str, tuple[Any, str]]) -> list[str]:
    """app_threads above a worker's pool: each thread may hold one connection, an extra one would wait and fail.

    Only hosts whose three values passed their own rules are compared, so a bad value is reported once.
    """
    names = ("app_threads", "app_db_pool_size", "app_db_max_overflow")
    checks = {rule.name: rule.check for rule in RULES if rule.name in names}
    problems = []
    for host in inventory.hosts_in("app"):
        if any(checks[name](merged[host].get(name)) is not None for name in names):
            continue
        threads, pool_size, max_overflow = (merged[host][name] for name in names)
        if threads <= pool_size + max_overflow:
            continue
        where = {name: inventory.origins[host].get(name) or defaults.get(name, (None, "?"))[1] for name in names}
        problems.append(
            f"{host}: app_threads = {threads} ({where['app_threads']}) exceeds app_db_pool_size + "
            f"app_db_max_overflow = {pool_size} ({where['app_db_pool_size']}) + {max_overflow} "
            f"({where['app_db_max_overflow']}) = {pool_size + max_overflow}: each thread may hold one pooled "
            "PostgreSQL connection, so a thread beyond the pool waits (up to app_db_pool_timeout, then its "
            "request fails) for another thread to give one back; fix: set app_threads to at most "
            f"{pool_size + max_overflow}, or raise app_db_max_overflow (PostgreSQL's max_connections grows with it)")
    return problems


def validate(inventory: Inventory, check_secrets: bool = True, check_files: bool = True) -> list[str]:
    """Return every problem of the inventory as a sentence (empty list = valid).

    `check_secrets=False` skips the secret rules (an inventory loaded without its vault holds placeholders).
    `check_files=False` skips the control-node file rules (TLS material), for readers that never open them.
    """
    defaults = role_defaults()
    hosts_file = str(inventory.path / "hosts.yml")
    problems = _topology_problems(inventory, hosts_file)
    merged: dict[str, dict[str, Any]] = {}
    for host in inventory.hosts:
        merged[host] = {name: value for name, (value, _) in defaults.items()} | inventory.hostvars[host]
        groups = set(inventory.groups_of(host))
        for rule in RULES:
            if ((rule.groups and not groups.intersection(rule.groups)) or (rule.secret and not check_secrets)
                    or (rule.check is _local_file and not check_files)):
                continue
            if rule.name not in merged[host]:
                problems.append(
                    f"{host}: {rule.name} is not set (needed by {', '.join(rule.groups) or 'every'} hosts); "
                    f"fix: define it in group_vars or host vars (see inventories/production.example/)")
                continue
            value = merged[host][rule.name]
            if (found := rule.check(value)) is None:
                continue
            what, fix = found
            where = inventory.origins[host].get(rule.name) or defaults.get(rule.name, (None, "?"))[1]
            shown = "(secret, not shown)" if rule.secret else repr(value)
            problems.append(f"{host}: {rule.name} = {shown} ({where}) {what}; fix: {fix}")
    problems.extend(_address_problems(inventory, merged))
    problems.extend(_threads_problems(inventory, merged, defaults))
    return problems
