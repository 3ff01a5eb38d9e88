"""The redis role's context: private bind, TLS, memory cap and policy, ACL users with hashed passwords."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, TypedDict

from roles.common.context import CA_CERT_PATH
from roles.registry import Group
from tsdeploy.rolespec import Inbound
from tsdeploy.units import format_size, parse_size

if TYPE_CHECKING:
    from tsdeploy.topology import HostView


class RedisContext(TypedDict):
    """`ctx["redis"]` on a cache host (the app reads it through `view.service("redis")`)."""

    host: str
    address: str
    port: int
    bind: list[str]
    socket: str
    tls_cert: str
    tls_key: str
    tls_ca: str
    tls_cert_src: str
    tls_key_src: str
    maxmemory: str
    maxmemory_policy: str
    key_prefix: str
    app_user: str
    app_password: str
    app_password_sha256: str
    app_password_fallback_sha256: str
    admin_user: str
    admin_password: str
    admin_password_sha256: str
    admin_password_fallback_sha256: str
    exporter_user: str
    exporter_commands: list[str]
    exporter_password_sha256: str
    exporter_password_fallback_sha256: str
    appendonly: bool
    appendfsync: str
    restart: str


#: Redis's only plain-text listener: a unix socket for the tools on the cache host itself (the deploy's
#: reconciliation, verify, an operator's redis-cli), writable by root and redis only. The network gets TLS.
SOCKET = "/run/redis/redis-server.sock"
TLS_DIR = "/etc/redis/tls"

#: The Redis exporter's ACL user: INFO and the slowlog/latency reads it needs, no key and no channel.
EXPORTER_USER = "exporter"
#: What Debian's redis exporter (1.45) sends with --config-command=- (no CONFIG GET, which would read settings):
#: AUTH/HELLO to log in, CLIENT SETNAME, PING, INFO, SLOWLOG GET/LEN, LATENCY LATEST/HISTOGRAM.
EXPORTER_COMMANDS = ("+auth", "+hello", "+ping", "+client|setname", "+info", "+slowlog|get", "+slowlog|len",
                     "+latency|latest", "+latency|histogram")


def password_hash(password: str) -> str:
    """Redis ACL files accept `#<sha256 hex>` instead of the password, so the file holds no plaintext."""
    return hashlib.sha256(password.encode()).hexdigest()


def inbound(view: HostView) -> list[Inbound]:
    return [Inbound(int(view.vars["redis_port"]), view.addresses(Group.APP), "Redis from app hosts")]


def derive(view: HostView) -> RedisContext:
    v = view.vars
    address = str(v["private_address"])
    monitored = bool(view.topology.hosts(Group.MONITOR))
    return RedisContext(
        host=view.name,
        address=address,
        port=int(v["redis_port"]),
        bind=["127.0.0.1", "-::1", address],
        socket=SOCKET,
        tls_cert=f"{TLS_DIR}/server.crt",
        tls_key=f"{TLS_DIR}/server.key",
        # The inventory's CA, which the common role installs on every host: tls-auth-clients is off (clients
        # log in with their ACL password), so Redis reads it only to complete its certificate chain.
        tls_ca=CA_CERT_PATH,
        tls_cert_src=v["tls_cert_file"],
        tls_key_src=v["tls_key_file"],
        maxmemory=format_size(parse_size(v["redis_maxmemory"])).lower(),
        maxmemory_policy=v["redis_maxmemory_policy"],
        key_prefix=v["redis_key_prefix"],
        app_user=v["redis_app_user"],
        app_password=v["redis_app_password"],
        app_password_sha256=password_hash(v["redis_app_password"]),
        # Both passwords are valid while a rotation switches the app hosts one by one.
        app_password_fallback_sha256=password_hash(v["redis_app_password_fallback"])
        if v["redis_app_password_fallback"] else "",
        admin_user=v["redis_admin_user"],
        admin_password=v["redis_admin_password"],
        admin_password_sha256=password_hash(v["redis_admin_password"]),
        admin_password_fallback_sha256=password_hash(v["redis_admin_password_fallback"])
        if v["redis_admin_password_fallback"] else "",
        # The exporter's user exists only while a monitor host scrapes this Redis (its password is then required).
        exporter_user=EXPORTER_USER,
        exporter_commands=list(EXPORTER_COMMANDS),
        exporter_password_sha256=password_hash(v["redis_exporter_password"])
        if monitored and v["redis_exporter_password"] else "",
        exporter_password_fallback_sha256=password_hash(v["redis_exporter_password_fallback"])
        if monitored and v["redis_exporter_password"] and v["redis_exporter_password_fallback"] else "",
        appendonly=bool(v["redis_appendonly"]),
        appendfsync=v["redis_appendfsync"],
        restart=v["redis_restart"],
    )
