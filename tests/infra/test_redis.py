"""cache hosts: Redis service, binding, TLS, ACL users (live), hardening switches and file modes.

redis-cli exits 0 on NOAUTH and NOPERM, so every check here reads its output. The suite only sends
commands Redis refuses (NOAUTH/NOPERM are decided before a command runs) or read-only ones (GET/EXISTS).
"""

from __future__ import annotations

import pytest

from verifyhosts import Target

REDIS_CONF = "/etc/redis/redis.conf"
SERVICE = "redis-server"
DANGEROUS = [
    pytest.param(("FLUSHALL",), id="FLUSHALL"),
    pytest.param(("CONFIG", "GET", "requirepass"), id="CONFIG"),
    pytest.param(("DEBUG", "SLEEP", "0"), id="DEBUG"),
    pytest.param(("KEYS", "*"), id="KEYS"),
]


def _config(cache: Target) -> dict[str, list[str]]:
    """redis.conf directives (last value wins in Redis; repeated ones such as `bind` are kept as given)."""
    directives: dict[str, list[str]] = {}
    for line in cache.sudo_check("cat %s", REDIS_CONF).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            directives[key.lower()] = value.split()
    return directives


def _acl_lines(cache: Target) -> list[list[str]]:
    aclfile = _config(cache)["aclfile"][0].strip('"')
    return [line.split() for line in cache.sudo_check("cat %s", aclfile).splitlines() if line.startswith("user ")]


@pytest.mark.control("ts-redis-01")
def test_redis_is_enabled_and_running(cache: Target) -> None:
    assert (problem := cache.service_problem(SERVICE)) is None, problem


@pytest.mark.control("ts-redis-01")
def test_redis_runs_as_the_redis_user(cache: Target) -> None:
    users = {proc.user for proc in cache.host.process.filter(comm="redis-server")}
    assert users == {"redis"}, f"{cache}: redis-server runs as {users or 'nothing (not running)'}"


@pytest.mark.control("ts-redis-02")
def test_redis_listens_only_on_loopback_and_the_private_address(cache: Target) -> None:
    port = cache.ctx["redis"]["port"]
    listeners = {line.split()[3].rsplit(":", 1)[0].strip("[]")
                 for line in cache.sudo_check("ss -H -t -l -n sport = :%s", str(port)).splitlines()}
    assert listeners and listeners <= {"127.0.0.1", "::1", cache.address}, f"{cache}: Redis listens on {listeners}"
    assert cache.address in listeners, f"{cache}: Redis does not listen on the private address {cache.address}"


@pytest.mark.control("ts-redis-07")
def test_redis_listens_on_no_tcp_port_but_its_tls_port(cache: Target) -> None:
    ports = {line.split()[3].rsplit(":", 1)[1]
             for line in cache.sudo_check("ss -H -t -l -n -p").splitlines() if '"redis-server"' in line}
    assert ports == {str(cache.ctx["redis"]["port"])}, f"{cache}: redis-server listens on TCP ports {ports}"


@pytest.mark.control("ts-redis-07")
def test_redis_serves_a_certificate_the_inventorys_ca_verifies_for_its_address(cache: Target) -> None:
    redis = cache.ctx["redis"]
    problem = cache.tls_problem(redis["address"], redis["port"], redis["tls_ca"])
    assert problem is None, problem


@pytest.mark.control("ts-redis-07")
def test_redis_answers_no_plain_text_command_on_its_port(cache: Target) -> None:
    redis = cache.ctx["redis"]
    result = cache.host.run("timeout 5 redis-cli -h %s -p %s PING", redis["address"], str(redis["port"]))
    answer = (result.stdout + result.stderr).strip()
    assert "PONG" not in answer and "NOAUTH" not in answer, f"{cache}: a plain-text PING answered {answer!r}"


@pytest.mark.control("ts-redis-02")
def test_protected_mode_is_on(cache: Target) -> None:
    assert _config(cache).get("protected-mode") == ["yes"]


@pytest.mark.control("ts-redis-03")
def test_unauthenticated_ping_answers_noauth(cache: Target) -> None:
    answer = cache.redis_cli("PING")
    assert answer.startswith("NOAUTH"), f"{cache}: unauthenticated PING answered {answer!r}"


@pytest.mark.control("ts-redis-03")
def test_acl_file_switches_the_default_user_off(cache: Target) -> None:
    default = [line for line in _acl_lines(cache) if line[1] == "default"]
    assert default and "off" in default[0] and "nopass" not in default[0], f"{cache}: default user {default}"


@pytest.mark.control("ts-redis-04")
def test_acl_file_limits_the_app_user_to_its_prefix_without_dangerous_commands(cache: Target) -> None:
    redis = cache.ctx["redis"]
    app = [line for line in _acl_lines(cache) if line[1] == redis["app_user"]]
    assert app, f"{cache}: no ACL user {redis['app_user']}"
    rules = app[0][2:]
    key_patterns = [rule for rule in rules if rule.startswith("~") or rule.startswith("%")]
    assert key_patterns == [f"~{redis['key_prefix']}*"], f"{cache}: app user key patterns {key_patterns}"
    assert {"-@dangerous", "-@admin"} <= set(rules), f"{cache}: app user rules {rules}"
    admins = [line for line in _acl_lines(cache) if line[1] == redis["admin_user"]]
    assert admins, f"{cache}: no separate admin user {redis['admin_user']}"


@pytest.mark.control("ts-redis-04")
@pytest.mark.parametrize("command", DANGEROUS)
def test_app_user_is_refused_a_dangerous_command(cache: Target, command: tuple[str, ...]) -> None:
    redis = cache.ctx["redis"]
    answer = cache.redis_cli(*command, user=redis["app_user"], password=cache.secret("redis_app_password"))
    # With enable-debug-command no, Redis refuses DEBUG before its ACL check, for every user.
    refused = answer.startswith("NOPERM") or (command[0] == "DEBUG" and "DEBUG command not allowed" in answer)
    assert refused, f"{cache}: {' '.join(command)} as {redis['app_user']} answered {answer!r}"


@pytest.mark.control("ts-redis-04")
def test_app_user_may_read_inside_its_prefix(cache: Target) -> None:
    redis = cache.ctx["redis"]
    answer = cache.redis_cli("EXISTS", f"{redis['key_prefix']}verify:probe", user=redis["app_user"],
                             password=cache.secret("redis_app_password"))
    assert answer in ("0", "1"), f"{cache}: EXISTS inside the prefix answered {answer!r}"


@pytest.mark.control("ts-redis-04")
def test_app_user_gets_noperm_outside_its_prefix(cache: Target) -> None:
    redis = cache.ctx["redis"]
    answer = cache.redis_cli("EXISTS", "verify-outside-prefix", user=redis["app_user"],
                             password=cache.secret("redis_app_password"))
    assert answer.startswith("NOPERM"), f"{cache}: EXISTS outside the prefix answered {answer!r}"


@pytest.mark.control("ts-redis-05")
@pytest.mark.parametrize("directive", ["enable-debug-command", "enable-module-command", "enable-protected-configs"])
def test_risky_command_switch_stays_no(cache: Target, directive: str) -> None:
    # Absent means Redis's default, which is "no" for all three.
    assert _config(cache).get(directive, ["no"]) == ["no"], f"{cache}: {directive} {_config(cache)[directive]}"


def _stat(target: Target, path: str) -> tuple[str, str, str]:
    owner, group, mode = target.sudo_check("stat -c '%%U %%G %%a' %s", path).split()
    return owner, group, mode


@pytest.mark.control("ts-redis-06")
def test_config_directory_is_0750(cache: Target) -> None:
    owner, group, mode = _stat(cache, "/etc/redis")
    # Debian keeps the setgid bit on /etc/redis (2750); the permission bits are what the baseline fixes.
    assert mode[-3:] == "750" and "redis" in (owner, group), f"{cache}: /etc/redis is {owner}:{group} {mode}"


@pytest.mark.control("ts-redis-06")
@pytest.mark.parametrize("which", ["redis.conf", "aclfile"])
def test_config_and_acl_files_are_0640(cache: Target, which: str) -> None:
    path = REDIS_CONF if which == "redis.conf" else _config(cache)["aclfile"][0].strip('"')
    owner, group, mode = _stat(cache, path)
    assert mode == "640" and group == "redis", f"{cache}: {path} is {owner}:{group} {mode}"


@pytest.mark.control("ts-redis-06")
def test_data_directory_is_not_writable_by_others(cache: Target) -> None:
    data_dir = _config(cache).get("dir", ["/var/lib/redis"])[0].strip('"')
    owner, _, mode = _stat(cache, data_dir)
    assert owner == "redis" and int(mode[-1]) & 2 == 0, f"{cache}: {data_dir} owner {owner} mode {mode}"


@pytest.mark.control("ts-restart-pending")
def test_no_restart_pending(cache: Target) -> None:
    # The deploy records a directive it could not apply without a restart (roles/common/restarts.py); a marker
    # older than redis-server's last start is stale (the restart happened) and does not count.
    from roles.common.restarts import PendingRestarts

    result = cache.sudo("sh -c %s", PendingRestarts().command())
    pending = PendingRestarts().process(result.stdout.splitlines()).get("redis")
    assert not pending, (f"{cache}: Redis needs a restart to apply {pending} (deferred by the deploy); fix: "
                         f"tsdeploy deploy INVENTORY --allow-restart redis")
