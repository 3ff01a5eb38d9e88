"""THE template context builder: one pure function of the inventory (no live facts) per host.

`build_context(inventory, hostname)` merges, lowest first: the roles' DEFAULTS < the inventory's variables
< derived values (versions per Debian release, PostgreSQL tuning, Gunicorn workers, peer addresses,
firewall rules). The deploy, `tsdeploy generate` and the verify drift check all render from it, so a
generated file is byte-identical to the deployed one. See roles/README.md for the shape.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from tsdeploy import tuning
from tsdeploy.defaults import role_defaults
from tsdeploy.inventory import ROLE_GROUPS, Inventory
from tsdeploy.units import format_size, parse_size

#: Debian release -> the PostgreSQL major version it ships.
POSTGRESQL_VERSIONS = {"bookworm": 15, "trixie": 17}
#: Debian release -> the CPython version of its python3 (the app's wheelhouse is built for it).
PYTHON_VERSIONS = {"bookworm": "3.11", "trixie": "3.13"}
#: Where the common role installs the inventory's CA certificate on every host (clients verify with it).
CA_CERT_PATH = "/etc/ssl/tsdeploy/ca.pem"
#: Build options of Debian's postgresql-15 (bookworm) and postgresql-17 (trixie) packages that PGTune cannot
#: see and therefore warns about (`pg_config --configure` on a lab db host lists `--with-lz4`). `tsdeploy tune`
#: keeps PGTune's warning; the deploy, which installs exactly these packages, knows the answer and drops it.
DEBIAN_POSTGRESQL_BUILD_OPTIONS = ("--with-lz4",)

#: linux-baseline sysctl-01..17 that live in each network namespace, so they apply inside containers too.
NETWORK_SYSCTLS = {
    "net.ipv4.ip_forward": 0,
    "net.ipv6.conf.all.forwarding": 0,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.default.accept_redirects": 0,
    "net.ipv6.conf.all.accept_redirects": 0,
    "net.ipv6.conf.default.accept_redirects": 0,
    "net.ipv4.conf.all.secure_redirects": 0,
    "net.ipv4.conf.default.secure_redirects": 0,
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.default.send_redirects": 0,
    "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.default.accept_source_route": 0,
    "net.ipv6.conf.all.accept_source_route": 0,
    "net.ipv6.conf.default.accept_source_route": 0,
    "net.ipv4.conf.all.rp_filter": 1,
    "net.ipv4.conf.default.rp_filter": 1,
    "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.conf.default.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.icmp_ignore_bogus_error_responses": 1,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv6.conf.all.accept_ra": 0,
    "net.ipv6.conf.default.accept_ra": 0,
}
#: Kernel-wide settings: only settable on VMs and bare metal; the common role skips them in containers.
KERNEL_SYSCTLS = {
    "kernel.randomize_va_space": 2,
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "fs.suid_dumpable": 0,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
}


def merged_vars(inventory: Inventory, hostname: str) -> dict[str, Any]:
    """Role DEFAULTS < the host's inventory variables."""
    defaults = {name: value for name, (value, _) in role_defaults().items()}
    return defaults | inventory.hostvars[hostname]


def _peers(inventory: Inventory) -> dict[str, list[dict[str, str]]]:
    return {group: [{"name": name, "address": str(inventory.hostvars[name]["private_address"])}
                    for name in inventory.hosts_in(group)]
            for group in ROLE_GROUPS}


def _host(inventory: Inventory, hostname: str, v: dict[str, Any]) -> dict[str, Any]:
    memory = parse_size(v["host_memory"])
    return {
        "name": hostname,
        "groups": inventory.groups_of(hostname),
        "private_address": str(v["private_address"]),
        "memory": memory,
        "memory_human": format_size(memory),
        "cpus": int(v["host_cpus"]),
        "debian_release": v["debian_release"],
        "python_version": PYTHON_VERSIONS[v["debian_release"]],
        "deploy_user": v["deploy_user"],
    }


def _firewall(groups: list[str], v: dict[str, Any], peers: dict[str, list[dict[str, str]]],
              ) -> list[dict[str, Any]]:
    """Inbound allow rules for this host's roles (everything else is dropped); sources are addresses/CIDRs."""
    app_hosts = [peer["address"] for peer in peers["app"]]
    lb_hosts = [peer["address"] for peer in peers["lb"]]
    rules = [{"port": int(v["ssh_port"]), "sources": list(v["ssh_allow_from"]), "why": "ssh for the deploy"}]
    if "db" in groups:
        rules.append({"port": int(v["postgresql_port"]), "sources": app_hosts, "why": "PostgreSQL from app hosts"})
    if "cache" in groups:
        rules.append({"port": int(v["redis_port"]), "sources": app_hosts, "why": "Redis from app hosts"})
    if "app" in groups:
        rules.append({"port": int(v["app_port"]), "sources": lb_hosts, "why": "Gunicorn from lb hosts"})
    if "lb" in groups:
        rules.extend({"port": port, "sources": ["0.0.0.0/0", "::/0"], "why": "HTTP(S) from anywhere"}
                     for port in (80, 443))
    for rule in rules:
        rule["v4"] = [source for source in rule["sources"] if ":" not in source]
        rule["v6"] = [source for source in rule["sources"] if ":" in source]
    return rules


def _common(groups: list[str], v: dict[str, Any], peers: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    return {
        "deploy_user": v["deploy_user"],
        "ssh_port": int(v["ssh_port"]),
        "firewall_rules": _firewall(groups, v, peers),
        "network_sysctls": dict(NETWORK_SYSCTLS),
        "kernel_sysctls": dict(KERNEL_SYSCTLS),
        "ca_cert_src": v.get("tls_ca_cert_file"),
        "ca_cert_path": CA_CERT_PATH,
    }


def app_workers(v: dict[str, Any], cpus: int) -> int:
    """Gunicorn workers: the inventory's app_workers, or 2 x CPUs + 1 when it is 0."""
    return int(v["app_workers"]) or 2 * cpus + 1


def app_worker_class(threads: int) -> str:
    """Gunicorn's worker class for `threads` per worker: "sync" for one, "gthread" for more.

    Gunicorn would switch a sync worker with threads > 1 to gthread by itself; naming the class keeps the
    rendered file honest about what runs.

    >>> app_worker_class(1), app_worker_class(4)
    ('sync', 'gthread')
    """
    return "sync" if threads == 1 else "gthread"


def _app_topology(inventory: Inventory, v: dict[str, Any], headroom: int) -> tuning.Topology:
    """The app tier's connection demand; workers are counted per app host (CPU counts may differ)."""
    app_hosts = inventory.hosts_in("app")
    workers = max((app_workers(merged_vars(inventory, name), int(merged_vars(inventory, name)["host_cpus"]))
                   for name in app_hosts), default=1)
    return tuning.Topology(app_hosts=max(len(app_hosts), 1), workers=workers,
                           pool_size=int(v["app_db_pool_size"]), max_overflow=int(v["app_db_max_overflow"]),
                           headroom=headroom)


def _warnings_debian_does_not_answer(warnings: list[str]) -> list[str]:
    """PGTune's warnings minus "requires PostgreSQL to be compiled with X" for the X Debian's packages have.

    >>> _warnings_debian_does_not_answer(["wal_compression = lz4 requires PostgreSQL to be compiled with --with-lz4"])
    []
    """
    return [warning for warning in warnings
            if not any(warning.endswith(f"compiled with {option}") for option in DEBIAN_POSTGRESQL_BUILD_OPTIONS)]


def _postgres(inventory: Inventory, peers: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    db_host = inventory.hosts_in("db")[0]
    v = merged_vars(inventory, db_host)
    version = POSTGRESQL_VERSIONS[v["debian_release"]]
    memory = parse_size(v["host_memory"])
    topology = _app_topology(inventory, v, int(v["postgresql_connection_headroom"]))
    tuned = tuning.tune(memory=memory, cpus=int(v["host_cpus"]), storage=v["postgresql_storage"],
                        profile=v["postgresql_profile"], pg_version=version,
                        connections=topology.max_connections)
    warnings = (_warnings_debian_does_not_answer(tuned.warnings)
                + tuning.demand_warnings(tuning=tuned, memory=memory, topology=topology))
    conf_dir = f"/etc/postgresql/{version}/main"
    address = str(v["private_address"])
    settings = [{"name": name, "value": setting.value, "reason": setting.reason}
                for name, setting in tuned.settings.items()]
    for setting in settings:
        if setting["name"] == "wal_compression" and setting["value"] == "lz4":
            setting["reason"] += "; Debian's package is built --with-lz4"
    settings[0]["reason"] = (f"{topology.app_hosts} app hosts x {topology.workers} workers x (pool "
                             f"{topology.pool_size} + overflow {topology.max_overflow}) + "
                             f"{topology.headroom} headroom")
    threshold_ms = int(round(float(v["app_slow_query_threshold"]) * 1000))
    settings += [
        {"name": "listen_addresses", "value": f"'localhost,{address}'",
         "reason": "loopback and the private address only, never * (CIS 5.2)"},
        {"name": "port", "value": str(int(v["postgresql_port"])), "reason": "the port app hosts connect to"},
        {"name": "password_encryption", "value": "'scram-sha-256'", "reason": "SCRAM verifiers only (postgres-07)"},
        {"name": "ssl", "value": "on", "reason": "app hosts connect over hostssl only"},
        {"name": "ssl_cert_file", "value": f"'{conf_dir}/server.crt'",
         "reason": "the inventory's certificate, signed by its CA (never snakeoil)"},
        {"name": "ssl_key_file", "value": f"'{conf_dir}/server.key'", "reason": "its key, 0600 postgres"},
        {"name": "ssl_min_protocol_version", "value": "'TLSv1.2'", "reason": "no TLS 1.0/1.1 (CIS 6.8)"},
        {"name": "shared_preload_libraries", "value": "'pg_stat_statements'",
         "reason": "query statistics for the app's monitor (needs a restart to change)"},
        {"name": "log_connections", "value": "on", "reason": "audit trail of logins (CIS 3.1.20)"},
        {"name": "log_disconnections", "value": "on", "reason": "session durations (CIS 3.1.21)"},
        {"name": "log_line_prefix", "value": "'%m [%p] db=%d,user=%u,app=%a,client=%h '",
         "reason": "time, pid, database, user, application and client on every line (CIS 3.1.23)"},
        {"name": "log_statement", "value": "'ddl'", "reason": "schema changes are logged (CIS 3.1.24)"},
        {"name": "log_min_duration_statement", "value": str(threshold_ms),
         "reason": f"statements slower than SLOW_QUERY_THRESHOLD ({v['app_slow_query_threshold']} s)"},
    ]
    return {
        "host": db_host,
        "address": address,
        "version": version,
        "port": int(v["postgresql_port"]),
        "conf_dir": conf_dir,
        "data_dir": f"/var/lib/postgresql/{version}/main",
        "service": f"postgresql@{version}-main",
        "db_name": v["postgresql_db_name"],
        "app_user": v["postgresql_app_user"],
        "app_password": v["postgresql_app_password"],
        "connection_limit": topology.demand,
        "max_connections": topology.max_connections,
        "extensions": list(v["postgresql_extensions"]),
        "settings": settings,
        "warnings": warnings,
        "hba_app_hosts": [peer["address"] for peer in peers["app"]],
        "tls_cert_src": v["tls_cert_file"],
        "tls_key_src": v["tls_key_file"],
    }


def _redis_password_hash(password: str) -> str:
    """Redis ACL files accept `#<sha256 hex>` instead of the password, so the file holds no plaintext."""
    return hashlib.sha256(password.encode()).hexdigest()


def _redis(inventory: Inventory) -> dict[str, Any]:
    cache_host = inventory.hosts_in("cache")[0]
    v = merged_vars(inventory, cache_host)
    address = str(v["private_address"])
    return {
        "host": cache_host,
        "address": address,
        "port": int(v["redis_port"]),
        "bind": ["127.0.0.1", "-::1", address],
        "maxmemory": format_size(parse_size(v["redis_maxmemory"])).lower(),
        "maxmemory_policy": v["redis_maxmemory_policy"],
        "key_prefix": v["redis_key_prefix"],
        "app_user": v["redis_app_user"],
        "app_password": v["redis_app_password"],
        "app_password_sha256": _redis_password_hash(v["redis_app_password"]),
        "admin_user": v["redis_admin_user"],
        "admin_password": v["redis_admin_password"],
        "admin_password_sha256": _redis_password_hash(v["redis_admin_password"]),
    }


def _env_quote(value: Any) -> str:
    """A value for an EnvironmentFile line: double-quoted, with the characters systemd and sh unescape."""
    escaped = "".join(f"\\{char}" if char in '\\"`$' else char for char in str(value))
    return f'"{escaped}"'


def _app_service(v: dict[str, Any], host: dict[str, Any], peers: dict[str, list[dict[str, str]]],
                 app: dict[str, Any]) -> dict[str, Any]:
    """The app role's paths, Gunicorn settings, EnvironmentFile lines and firewall-style allow lists."""
    lb_hosts = sorted({peer["address"] for peer in peers["lb"]})
    talks_to = {host["private_address"], *lb_hosts, *(peer["address"] for peer in peers["db"] + peers["cache"])}
    env = {
        "DATABASE_URL": app["database_url"], "REDIS_URL": app["redis_url"], "SECRET_KEY": app["secret_key"],
        "DB_POOL_SIZE": app["db_pool_size"], "DB_MAX_OVERFLOW": app["db_max_overflow"],
        "DB_POOL_TIMEOUT": app["db_pool_timeout"], "DB_POOL_RECYCLE": app["db_pool_recycle"],
        "SLOW_QUERY_THRESHOLD": app["slow_query_threshold"], "CACHE_KEY_PREFIX": app["cache_key_prefix"],
        "PROXY_COUNT": int(v["app_proxy_count"]), "FLASK_ENV": "production",
    }
    return {
        "user": "talentsphere",
        "base_dir": "/opt/talentsphere",
        "releases_dir": "/opt/talentsphere/releases",
        "artifacts_dir": "/opt/talentsphere/artifacts",
        "current_dir": "/opt/talentsphere/current",
        "config_dir": "/etc/talentsphere",
        "env_file": "/etc/talentsphere/env",
        "gunicorn_conf": "/etc/talentsphere/gunicorn.conf.py",
        "env": {name: _env_quote(value) for name, value in env.items()},
        "bind": f"{host['private_address']}:{app['port']}",
        "ready_url": f"http://{host['private_address']}:{app['port']}/health/ready",
        "ready_timeout": int(v["app_ready_timeout"]),
        "forwarded_allow_ips": ",".join(lb_hosts) or "127.0.0.1",
        "ip_address_allow": ["localhost", *sorted(talks_to)],
        **{key: int(v[f"app_{key}"]) for key in (
            "timeout", "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter",
            "limit_request_line", "limit_request_fields", "limit_request_field_size", "seed_jobs", "seed")},
    }


def _app(v: dict[str, Any], host: dict[str, Any], postgres: dict[str, Any], redis: dict[str, Any],
         ) -> dict[str, Any]:
    user, password = quote(postgres["app_user"], safe=""), quote(postgres["app_password"], safe="")
    redis_user, redis_password = quote(redis["app_user"], safe=""), quote(redis["app_password"], safe="")
    database_url = (f"postgresql+psycopg2://{user}:{password}@{postgres['address']}:{postgres['port']}/"
                    f"{postgres['db_name']}?sslmode=verify-full&sslrootcert={CA_CERT_PATH}")
    threads = int(v["app_threads"])
    return {
        "port": int(v["app_port"]),
        "workers": app_workers(v, host["cpus"]),
        "threads": threads,
        "worker_class": app_worker_class(threads),
        "python_version": host["python_version"],
        "database_url": database_url,
        "redis_url": f"redis://{redis_user}:{redis_password}@{redis['address']}:{redis['port']}/0",
        "db_pool_size": int(v["app_db_pool_size"]),
        "db_max_overflow": int(v["app_db_max_overflow"]),
        "db_pool_timeout": int(v["app_db_pool_timeout"]),
        "db_pool_recycle": int(v["app_db_pool_recycle"]),
        "slow_query_threshold": float(v["app_slow_query_threshold"]),
        "secret_key": v["app_secret_key"],
        "cache_key_prefix": redis["key_prefix"],
        "releases_keep": int(v["app_releases_keep"]),
    }


def _nginx(v: dict[str, Any], peers: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    return {
        "server_name": v["nginx_server_name"],
        "upstream": [f"{peer['address']}:{int(v['app_port'])}" for peer in peers["app"]],
        # nginx must drop an idle upstream connection before Gunicorn does (app_keepalive; gthread workers keep
        # connections, sync workers close them): a request sent on a connection Gunicorn is closing fails,
        # and nginx retries only idempotent ones.
        "upstream_keepalive_timeout": max(1, int(v["app_keepalive"]) - 1),
        "tls_cert_src": v.get("tls_cert_file"),
        "tls_key_src": v.get("tls_key_file"),
        "tls_cert_path": "/etc/nginx/tls/talentsphere.crt",
        "tls_key_path": "/etc/nginx/tls/talentsphere.key",
        **{name.removeprefix("nginx_"): value for name, value in v.items()
           if name.startswith("nginx_") and name != "nginx_server_name"},
    }


def build_context(inventory: Inventory, hostname: str) -> dict[str, Any]:
    """The template context for one host: vars, host, peers and one section per role (see roles/README.md)."""
    v = merged_vars(inventory, hostname)
    host = _host(inventory, hostname, v)
    peers = _peers(inventory)
    postgres = _postgres(inventory, peers)
    redis = _redis(inventory)
    return {
        "vars": v,
        "host": host,
        "peers": peers,
        "common": _common(host["groups"], v, peers),
        "postgres": postgres,
        "redis": redis,
        "app": (app := _app(v, host, postgres, redis)) | _app_service(v, host, peers, app),
        "nginx": _nginx(v, peers),
    }
