"""The redis role's variables: TLS port and certificate, memory cap and eviction policy, ACL users, the app's key prefix."""

from __future__ import annotations

from typing import Any

from roles.common.variables import TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE
from tsdeploy import checks
from tsdeploy.rolespec import REQUIRED, Variable

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


def eviction_policy(value: Any) -> tuple[str, str] | None:
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


REDIS_APP_USER = Variable("redis_app_user", "talentsphere",
                          "the app's ACL user: only keys with redis_key_prefix, no dangerous or admin commands",
                          checks.identifier)
REDIS_APP_PASSWORD = Variable("redis_app_password", REQUIRED,
                              "its password, from the vault; the ACL file holds only its SHA-256",
                              checks.secret(), secret=True)
#: A second password of the app user while `tsdeploy rotate-secrets --only redis_app_password` runs.
REDIS_APP_PASSWORD_FALLBACK = Variable(
    "redis_app_password_fallback", "",
    "a second password the app user logs in with, during a rotation only (`tsdeploy rotate-secrets`), from the "
    "vault; empty: none", checks.optional_secret, secret=True)
#: The Redis exporter's own ACL user (the exporters role reads it too); used only with a monitor host.
REDIS_EXPORTER_PASSWORD = Variable(
    "redis_exporter_password", "",
    "the exporter ACL user's password (INFO and latency/slowlog reads, no key): from the vault; needed with a "
    "monitor host", checks.optional_secret, secret=True)
REDIS_EXPORTER_PASSWORD_FALLBACK = Variable(
    "redis_exporter_password_fallback", "",
    "a second password of the exporter user, during a rotation only (`tsdeploy rotate-secrets`), from the vault; "
    "empty: none", checks.optional_secret, secret=True)
REDIS_KEY_PREFIX = Variable("redis_key_prefix", "ts:",
                            "every app key starts with this (CACHE_KEY_PREFIX); the app ACL user is limited to it",
                            checks.key_prefix)

VARIABLES: tuple[Variable, ...] = (
    # 6380, not Redis's 6379: by convention the TLS port, and a Redis still serving plain text on 6379 takes
    # the TLS listener beside it at runtime (the app hosts switch while the plain port still answers).
    Variable("redis_port", 6380,
             "the port Redis serves on, TLS only (the host's tls_cert_file); nftables opens it to app hosts",
             checks.integer(1, 65535)),
    Variable("redis_maxmemory", "256MB", "memory cap for the cache; above it Redis evicts by redis_maxmemory_policy",
             checks.size),
    # Evict only keys with a TTL (every cache entry has one), least recently used first: the generation
    # counters, the view-count buffer and the cache statistics have no TTL and must never be evicted.
    Variable("redis_maxmemory_policy", "volatile-lru",
             "maxmemory-policy: a volatile-* policy, which evicts cache entries only", eviction_policy),
    REDIS_APP_USER,
    REDIS_APP_PASSWORD,
    Variable("redis_admin_user", "admin", "a separate ACL user with every permission, for operators",
             checks.identifier),
    Variable("redis_admin_password", REQUIRED, "its password, from the vault, stored hashed", checks.secret(),
             secret=True),
    REDIS_KEY_PREFIX,
    REDIS_APP_PASSWORD_FALLBACK,
    Variable("redis_admin_password_fallback", "",
             "a second password of the admin user, during a rotation only (`tsdeploy rotate-secrets`), from the "
             "vault; empty: none", checks.optional_secret, secret=True),
    REDIS_EXPORTER_PASSWORD,
    REDIS_EXPORTER_PASSWORD_FALLBACK,
    Variable("redis_appendonly", True,
             "keep an append-only file, so a crash loses at most redis_appendfsync's window of buffered views",
             checks.boolean),
    Variable("redis_appendfsync", "everysec", "when the append-only file is synced: always, everysec or no",
             checks.choice("always", "everysec", "no")),
    Variable("redis_restart", "defer",
             "a directive that needs a restart: defer (warn, record it as pending) or allow (restart Redis)",
             checks.choice("defer", "allow")),
    # Redis serves the network with TLS only: its certificate and key, and the CA its clients verify it with.
    TLS_CA_CERT_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
)
