"""Turning Redis's append-only file on keeps every key: the redis role switches it live before the restart.

A real redis-server (Debian's, as on the cache hosts) runs with appendonly off and an ACL admin user; the role's
own switch script (roles/redis/live.py) runs against it, then Redis restarts with `appendonly yes` in its file,
as the deploy does. The control case shows why: the same restart without the live switch starts empty.
"""

from __future__ import annotations

import pathlib
import shlex
import shutil
import subprocess

import pytest

from roles.redis import live
from redis_server import RedisServer

ADMIN_PASSWORD = "aof-switch-admin-password-0123456789"


class Redis(RedisServer):
    def __init__(self, directory: pathlib.Path) -> None:
        super().__init__(directory, ADMIN_PASSWORD)

    def start(self, appendonly: bool) -> None:
        self.start_with(f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\ndbfilename dump.rdb\n"
                        f"appendonly {'yes' if appendonly else 'no'}\nappendfsync everysec\nsave 3600 1\n"
                        f"user default off\nuser admin on >{ADMIN_PASSWORD} ~* &* +@all\n")


@pytest.fixture
def redis(tmp_path: pathlib.Path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: `make system-deps` installs it")
    server = Redis(tmp_path)
    yield server
    server.stop()


def _switch(redis: Redis, directory: pathlib.Path) -> subprocess.CompletedProcess[str]:
    secret = directory / "secret"
    secret.write_text(ADMIN_PASSWORD)
    script = live._SWITCH.format(secret=shlex.quote(str(secret)), user="admin",
                                where=f"-h 127.0.0.1 -p {redis.port}", timeout=30)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)


def _fill(redis: Redis) -> None:
    redis.cli("SET", "ts:gen:jobs", "41")
    redis.cli("HSET", "ts:views", "7", "200")


def test_switching_aof_on_live_then_restarting_keeps_every_key(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(appendonly=False)
    _fill(redis)
    switched = _switch(redis, tmp_path)
    assert switched.returncode == 0, switched.stderr
    assert not (tmp_path / "secret").exists(), "the password file must be removed"
    redis.stop()
    redis.start(appendonly=True)
    assert redis.cli("GET", "ts:gen:jobs") == "41"
    assert redis.cli("HGET", "ts:views", "7") == "200"


def test_the_switch_changes_nothing_when_the_aof_is_already_on(redis: Redis, tmp_path: pathlib.Path) -> None:
    redis.start(appendonly=True)
    switched = _switch(redis, tmp_path)
    assert switched.returncode == 0, switched.stderr
    assert redis.cli("CONFIG", "GET", "appendonly").splitlines() == ["appendonly", "yes"]


def test_without_the_live_switch_the_same_restart_starts_empty(redis: Redis) -> None:
    # The reason the role switches live: Redis prefers the (new, empty) AOF over the RDB snapshot.
    redis.start(appendonly=False)
    _fill(redis)
    redis.stop()
    redis.start(appendonly=True)
    assert redis.cli("GET", "ts:gen:jobs") == ""


def test_a_redis_that_cannot_be_asked_fails_the_switch_with_the_fix(tmp_path: pathlib.Path) -> None:
    nobody = Redis(tmp_path)  # never started: nothing listens on its port
    switched = _switch(nobody, tmp_path)
    assert switched.returncode == 1
    assert "would start empty; fix: start redis-server" in switched.stderr
