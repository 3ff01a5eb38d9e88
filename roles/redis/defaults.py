"""The redis role's public variables and their defaults (data only: read by tsdeploy.defaults by path)."""

DEFAULTS: dict[str, object] = {
    "redis_port": 6379,
    # Memory cap for the cache; above it Redis evicts by redis_maxmemory_policy.
    "redis_maxmemory": "256MB",
    # Evict only keys with a TTL (every cache entry has one), least recently used first: the generation
    # counters, the view-count buffer and the cache statistics have no TTL and must never be evicted.
    "redis_maxmemory_policy": "volatile-lru",
    "redis_app_user": "talentsphere",
    "redis_admin_user": "admin",
    # Every app key starts with this; the app ACL user may only touch keys matching it.
    "redis_key_prefix": "ts:",
}
