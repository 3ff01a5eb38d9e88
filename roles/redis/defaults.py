"""The redis role's public variables and their defaults (data only: read by tsdeploy.defaults by path)."""

DEFAULTS: dict[str, object] = {
    "redis_port": 6379,
    # Memory cap for the cache; keys are evicted allkeys-lru above it.
    "redis_maxmemory": "256MB",
    "redis_app_user": "talentsphere",
    "redis_admin_user": "admin",
    # Every app key starts with this; the app ACL user may only touch keys matching it.
    "redis_key_prefix": "ts:",
}
