"""No implicit restarts of stateful services: the decision, the marker fact, and Redis's live reconciliation.

The pure logic runs locally; the Redis parts run the role's own shell scripts (roles/redis/live.py) against a
throwaway redis-server on a free port in a temp dir, with the rendered redis.conf's directives.
"""

from __future__ import annotations

import pathlib
import shlex
import shutil
import subprocess

import pytest

from roles.common import restarts
from roles.postgres import sql
from roles.redis import directives, live
from redis_server import RedisServer, free_port
from tsdeploy.lab import pki

ADMIN_PASSWORD = "restart-test-admin-password-0123456789"

RENDERED = """# managed by TalentSphere Deploy
bind 127.0.0.1 -::1 10.0.0.11
port 6379
protected-mode yes
timeout 0
supervised systemd
aclfile /etc/redis/users.acl
maxmemory 256mb
maxmemory-policy volatile-lru
save 3600 1 300 100
dir /var/lib/redis
appendonly yes
appendfsync everysec
"""


# --- the decision ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "policy", "expected"), [
    ("", "defer", False),
    ("postgres", "defer", True),
    ("redis, postgres", "defer", True),
    ("redis", "defer", False),
    ("postgresql", "defer", False),  # role names, not service names
    ("", "allow", True),
])
def test_a_restart_is_allowed_only_by_the_env_var_or_the_policy(env: str, policy: str, expected: bool) -> None:
    assert restarts.allowed("postgres", policy, {restarts.ENV_VAR: env}) is expected


def test_the_env_var_is_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSDEPLOY_ALLOW_RESTART", "redis")
    assert restarts.allowed("redis", "defer") and not restarts.allowed("postgres", "defer")


def test_the_policy_variables_default_to_defer_and_accept_only_defer_or_allow() -> None:
    from roles.postgres.variables import VARIABLES as PG
    from roles.redis.variables import VARIABLES as REDIS

    for variables, name in ((PG, "postgres_restart"), (REDIS, "redis_restart")):
        variable = next(item for item in variables if item.name == name)
        assert variable.default == "defer" and variable.check("allow") is None and variable.check("defer") is None
        assert variable.check("always") is not None


# --- markers and the PendingRestarts fact ---------------------------------------------------------------

def test_pending_restarts_process_maps_service_to_reason() -> None:
    fact = restarts.PendingRestarts()
    output = ["postgresql\tshared_buffers: 128MB -> 256MB (needs a restart); max_connections: 100 -> 120 "
              "(needs a restart)", "redis\tbind: 127.0.0.1 -> 127.0.0.1 10.0.0.5 (needs a restart)"]
    assert fact.process(output) == {
        "postgresql": "shared_buffers: 128MB -> 256MB (needs a restart); max_connections: 100 -> 120 (needs a restart)",
        "redis": "bind: 127.0.0.1 -> 127.0.0.1 10.0.0.5 (needs a restart)"}
    assert fact.process([]) == {} and fact.default() == {}


def _run_fact_command(command: str, marker_dir: pathlib.Path) -> list[str]:
    script = command.replace(restarts.MARKER_DIR, str(marker_dir))
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_pending_restarts_command_reads_markers_and_skips_stale_ones(tmp_path: pathlib.Path) -> None:
    text = restarts.marker_text("redis-server", "redis", ["bind: a -> b (needs a restart)",
                                                          "port: 1 -> 2 (needs a restart)"])
    (tmp_path / "redis").write_text(text)
    # A unit that does not exist has no start time: the marker is not considered stale.
    (tmp_path / "other").write_text(restarts.marker_text("tsdeploy-no-such-unit", "x", ["a: 1 -> 2 (why)"]))
    fact = restarts.PendingRestarts()
    pending = fact.process(_run_fact_command(fact.command(), tmp_path))
    assert pending == {"redis": "bind: a -> b (needs a restart); port: 1 -> 2 (needs a restart)",
                       "other": "a: 1 -> 2 (why)"}
    assert restarts.reason_of(text) == pending["redis"]


def test_pending_restarts_command_without_markers_prints_nothing(tmp_path: pathlib.Path) -> None:
    fact = restarts.PendingRestarts()
    assert fact.process(_run_fact_command(fact.command(), tmp_path / "missing")) == {}


def test_marker_fact_returns_text_and_staleness() -> None:
    fact = restarts.Marker()
    text = restarts.marker_text("redis-server", "redis", ["bind: a -> b (x)"])
    assert fact.process(["current", *text.splitlines()]) == {"stale": False, "text": text}
    assert fact.process(["stale", *text.splitlines()])["stale"] is True
    assert fact.process([]) is None


# --- PostgreSQL ----------------------------------------------------------------------------------------

def test_postgres_pending_settings_are_named_with_running_and_new_values() -> None:
    fact = sql.PendingRestartSettings()
    rows = fact.process(["max_connections|100|120", "shared_buffers|128MB|256MB", "tsdeploy-ok"])
    assert rows == [("max_connections", "100", "120"), ("shared_buffers", "128MB", "256MB")]
    assert sql.pending_lines(rows, {"max_connections": "2 app hosts x 4 workers"}) == [
        "max_connections: 100 -> 120 (needs a restart; 2 app hosts x 4 workers)",
        "shared_buffers: 128MB -> 256MB (needs a restart)"]
    assert fact.process(["tsdeploy-ok"]) == []
    assert fact.process([]) is None, "psql failed: the operation must not guess"


# --- Redis: pure logic ---------------------------------------------------------------------------------

def test_runtime_settable_directives() -> None:
    for name in ("maxmemory", "maxmemory-policy", "appendfsync", "timeout", "appendonly", "save", "loglevel"):
        assert directives.runtime_settable(name), name
    for name in ("bind", "port", "unixsocket", "aclfile", "dir", "supervised", "databases", "something-new"):
        assert not directives.runtime_settable(name), name


def test_wanted_values_are_in_config_get_form() -> None:
    wanted = directives.wanted(RENDERED)
    assert wanted["maxmemory"] == str(256 * 1024 * 1024)
    assert wanted["bind"] == "127.0.0.1 -::1 10.0.0.11"
    assert wanted["save"] == "3600 1 300 100"
    assert directives.config_get_form("maxmemory", "1g") == "1000000000"
    assert directives.config_get_form("appendonly", "YES") == "yes"


def test_diff_splits_runtime_changes_from_restart_changes() -> None:
    live_output = ["bind", "127.0.0.1 -::1", "port", "6379", "maxmemory", str(128 * 1024 * 1024),
                   "maxmemory-policy", "volatile-lru", "appendfsync", "always", "aclfile", "/etc/redis/users.acl",
                   "dir", "/var/lib/redis", "save", "3600 1 300 100", "appendonly", "yes", "timeout", "0",
                   "protected-mode", "yes", "supervised", "systemd"]
    settable, restart = directives.diff(directives.wanted(RENDERED), directives.parse_config_get(live_output))
    assert [(c.name, c.running, c.new) for c in settable] == [
        ("maxmemory", str(128 * 1024 * 1024), str(256 * 1024 * 1024)), ("appendfsync", "always", "everysec")]
    assert [(c.name, c.new) for c in restart] == [("bind", "127.0.0.1 -::1 10.0.0.11")]
    assert directives.diff(directives.wanted(RENDERED), {}) == ([], []), "unanswered directives are not compared"


# --- Redis: the live scripts against a real redis-server -----------------------------------------------

class Redis(RedisServer):
    def __init__(self, directory: pathlib.Path) -> None:
        super().__init__(directory, ADMIN_PASSWORD)
        self.acl = directory / "users.acl"
        self.tls_port = free_port()

    def conf_text(self, **overrides: str) -> str:
        values = {"bind": "127.0.0.1", "port": str(self.port), "protected-mode": "yes", "timeout": "0",
                  "dir": str(self.directory), "aclfile": str(self.acl), "maxmemory": "64mb",
                  "maxmemory-policy": "volatile-lru", "appendonly": "no", "appendfsync": "everysec",
                  "save": "3600 1", "enable-protected-configs": "no", "enable-debug-command": "no"}
        values.update({key.replace("_", "-"): value for key, value in overrides.items()})
        return "".join(f"{key} {value}\n" for key, value in values.items())

    def tls_conf_text(self, **overrides: str) -> str:
        """As the template writes it: no plain TCP port, a unix socket, TLS with a lab-style certificate."""
        cert, key, ca = self.certificate()
        return self.conf_text(**{
            "port": "0", "unixsocket": str(self.socket_path), "unixsocketperm": "700", "tls-cert-file": str(cert),
            "tls-key-file": str(key), "tls-ca-cert-file": str(ca), "tls-auth-clients": "no",
            "tls-protocols": '"TLSv1.2 TLSv1.3"', "tls-port": str(self.tls_port), **overrides})

    @property
    def socket_path(self) -> pathlib.Path:
        return self.directory / "redis.sock"

    def certificate(self, name: str = "cache") -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
        """(certificate, key, CA) for 127.0.0.1, issued by a CA in the test's directory."""
        ca = pki.ensure_ca(self.directory / "pki", "unit")
        cert, key = pki.ensure_host_cert(self.directory / "pki", ca, name, "127.0.0.1")
        return cert, key, ca[0]

    def start(self, conf_text: str, acl: str | None = None) -> None:
        self.acl.write_text(acl if acl is not None else f"user default off\nuser admin on >{ADMIN_PASSWORD} ~* &* +@all\n")
        self.socket = self.socket_path if "unixsocket " in conf_text and "\nport 0\n" in conf_text else None
        self.start_with(conf_text)

    def tls_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """redis-cli over TLS as the admin user, verifying the server with the CA (as the app does)."""
        return subprocess.run(["redis-cli", "--no-auth-warning", "--tls", "--cacert", str(self.certificate()[2]),
                               "--user", "admin", "--pass", self.password, "-h", "127.0.0.1",
                               "-p", str(self.tls_port), *args], capture_output=True, text=True, check=False)

    def served_certificate(self) -> str:
        """The SHA-256 fingerprint of the certificate Redis's TLS port serves."""
        result = subprocess.run(f"openssl s_client -connect 127.0.0.1:{self.tls_port} </dev/null 2>/dev/null "
                                "| openssl x509 -noout -fingerprint -sha256", shell=True, capture_output=True,
                                text=True, check=False)
        return result.stdout.strip()


@pytest.fixture
def redis(tmp_path: pathlib.Path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: `make system-deps` installs it")
    server = Redis(tmp_path)
    yield server
    server.stop()


def _secret(directory: pathlib.Path) -> pathlib.Path:
    path = directory / "secret"
    path.write_text(ADMIN_PASSWORD)
    path.chmod(0o600)
    return path


def _probe(redis: Redis, names: tuple[str, ...], secret: pathlib.Path) -> dict:
    fact = live.RedisLive()
    result = subprocess.run(["sh", "-c", fact.command(socket=str(redis.socket_path), port=redis.port,
                                                      admin_user="admin", secret_path=str(secret), names=names)],
                            capture_output=True, text=True, check=True)
    return fact.process(result.stdout.splitlines())


@pytest.mark.parametrize("tls", [False, True], ids=["plain-text", "tls-as-deployed"])
def test_every_directive_of_the_rendered_template_has_the_config_get_form_redis_answers(redis: Redis,
                                                                                        tls: bool) -> None:
    overrides = {"maxmemory": "256mb", "save": "3600 1 300 100", "appendonly": "yes"}
    conf = redis.tls_conf_text(**overrides) if tls else redis.conf_text(**overrides)
    redis.start(conf)
    state = _probe(redis, tuple(directives.wanted(conf)), _secret(redis.directory))
    where = f"-s {redis.socket_path}" if tls else f"-h 127.0.0.1 -p {redis.port}"
    assert state["mode"] == "admin" and state["where"] == where
    assert directives.diff(directives.wanted(conf), state["config"]) == ([], [])
    # ... and the runtime table matches what this Redis accepts (enable-protected-configs no, as deployed).
    for name, value in state["config"].items():
        answer = redis.cli("CONFIG", "SET", name, value)
        assert (answer == "OK") == (directives.runtime_settable(name) or name in ("bind", "port")), (name, answer)


def test_probe_tells_a_fresh_redis_from_a_locked_one(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(redis.conf_text(), acl="user default on nopass ~* &* +@all\n")
    assert _probe(redis, ("port",), _secret(tmp_path))["mode"] == "fresh"
    redis.stop()
    redis.start(redis.conf_text())
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-admin-password-at-all")
    assert _probe(redis, ("port",), wrong)["mode"] == "locked"


def _apply(redis: Redis, secret: pathlib.Path, sets: list[directives.Change], acl_load: bool,
           tls_reload: bool = False):
    cert, key, _ = redis.certificate()
    script = live._APPLY.format(
        secret=shlex.quote(str(secret)), user="admin", aclfile=shlex.quote(str(redis.acl)),
        where=f"-s {redis.socket}" if redis.socket else f"-h 127.0.0.1 -p {redis.port}",
        sets="\n".join(f"set_one {shlex.quote(c.name)} {shlex.quote(c.new)}" for c in sets) or ":",
        acl_load="yes" if acl_load else "no", tls_reload="yes" if tls_reload else "no",
        tls_cert=shlex.quote(str(cert)), tls_key=shlex.quote(str(key)))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)


def test_runtime_changes_are_applied_live_and_restart_ones_are_left(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(redis.conf_text())
    redis.cli("SET", "ts:gen:jobs", "41")
    new_conf = redis.conf_text(maxmemory="128mb", appendfsync="always", timeout="300", bind="127.0.0.1 -::1")
    state = _probe(redis, tuple(directives.wanted(new_conf)), _secret(tmp_path))
    settable, restart = directives.diff(directives.wanted(new_conf), state["config"])
    assert {c.name for c in settable} == {"maxmemory", "appendfsync", "timeout"}
    assert [c.name for c in restart] == ["bind"]
    pid = redis.process.pid
    applied = _apply(redis, _secret(tmp_path), settable, acl_load=False)
    assert applied.returncode == 0, applied.stderr
    assert "maxmemory = 134217728 (CONFIG SET)" in applied.stdout
    assert redis.cli("CONFIG", "GET", "maxmemory").splitlines()[1] == "134217728"
    assert redis.cli("CONFIG", "GET", "appendfsync").splitlines()[1] == "always"
    assert redis.process.pid == pid and redis.cli("GET", "ts:gen:jobs") == "41", "no restart, no key lost"
    assert (tmp_path / "secret").exists(), "kept for the next command of the operation, which removes it"


def test_a_changed_acl_file_is_loaded_live(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(redis.conf_text())
    redis.acl.write_text(f"user default off\nuser admin on >{ADMIN_PASSWORD} ~* &* +@all\n"
                         "user talentsphere on >app-password-0123456789 ~ts:* +@all -@dangerous -@admin\n")
    applied = _apply(redis, _secret(tmp_path), [], acl_load=True)
    assert applied.returncode == 0, applied.stderr
    assert "talentsphere" in redis.cli("ACL", "USERS")


def test_a_refused_acl_file_fails_with_redis_error_and_keeps_the_old_users(redis: Redis,
                                                                           tmp_path: pathlib.Path) -> None:
    redis.start(redis.conf_text())
    redis.acl.write_text(f"user default off\nuser admin on >{ADMIN_PASSWORD} ~* &* +@all bogus-rule\n")
    applied = _apply(redis, _secret(tmp_path), [], acl_load=True)
    assert applied.returncode == 1
    assert "refused the ACL file" in applied.stderr and "keeps its previous users" in applied.stderr
    assert redis.cli("PING") == "PONG", "the previous users still work"
    assert not (tmp_path / "secret").exists(), "a failing command removes the password file"


def test_a_refused_config_set_fails_the_operation(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(redis.conf_text())
    applied = _apply(redis, _secret(tmp_path), [directives.Change("maxmemory-policy", "volatile-lru", "nonsense")],
                     acl_load=False)
    assert applied.returncode == 1 and "Redis refused CONFIG SET maxmemory-policy nonsense" in applied.stderr


def test_a_plain_text_redis_takes_tls_live_and_closes_its_plain_port_only_at_the_restart(
        redis: Redis, tmp_path: pathlib.Path) -> None:
    # A deployment from before TLS: the app hosts switch to the TLS port during the same deploy, so it must
    # answer before they do, without a restart (which would be deferred by default).
    redis.start(redis.conf_text())
    redis.cli("SET", "ts:gen:jobs", "41")
    new_conf = redis.tls_conf_text()
    state = _probe(redis, tuple(directives.wanted(new_conf)), _secret(tmp_path))
    settable, restart = directives.diff(directives.wanted(new_conf), state["config"])
    assert [c.name for c in settable] == ["tls-cert-file", "tls-key-file", "tls-ca-cert-file", "tls-auth-clients",
                                          "tls-protocols", "tls-port"], "the certificate before the port serving it"
    assert {c.name for c in restart} == {"port", "unixsocket", "unixsocketperm"}
    pid = redis.process.pid
    applied = _apply(redis, _secret(tmp_path), settable, acl_load=False)
    assert applied.returncode == 0, applied.stderr
    assert redis.tls_cli("GET", "ts:gen:jobs").stdout.strip() == "41", "TLS answers, verified with the CA"
    assert redis.cli("PING") == "PONG" and redis.process.pid == pid, "the plain port waits for the restart"
    redis.stop()
    redis.start(new_conf)
    assert redis.tls_cli("GET", "ts:gen:jobs").stdout.strip() == "41"
    plain = subprocess.run(["redis-cli", "-p", str(redis.port), "PING"], capture_output=True, text=True)
    assert "PONG" not in plain.stdout and "NOAUTH" not in plain.stdout, "no plain-text listener after it"


def test_a_tls_port_held_by_the_plain_listener_waits_for_the_restart() -> None:
    wanted = {"port": "0", "tls-port": "6379"}
    settable, restart = directives.diff(wanted, {"port": "6379", "tls-port": "0"})
    assert settable == [] and [c.name for c in restart] == ["port", "tls-port"]
    assert "holds the port" in directives.restart_why("tls-port")


def test_a_renewed_certificate_is_served_without_a_restart(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(redis.tls_conf_text())
    before, pid = redis.served_certificate(), redis.process.pid
    cert, key, _ = redis.certificate()
    cert.unlink()
    key.unlink()
    redis.certificate()  # issued again: a new key and serial, at the same paths
    applied = _apply(redis, _secret(tmp_path), [], acl_load=False, tls_reload=True)
    assert applied.returncode == 0, applied.stderr
    assert before and redis.served_certificate() not in ("", before)
    assert redis.process.pid == pid


def test_stamp_text_changes_with_each_file() -> None:
    base = live.stamp_text("a", "b", "c")
    assert base == live.stamp_text("a", "b", "c")
    assert len({base, live.stamp_text("a2", "b", "c"), live.stamp_text("a", "b2", "c"),
                live.stamp_text("a", "b", "c2")}) == 4
    assert live.tls_digest("cert", "key") != live.tls_digest("cert", "key2")
