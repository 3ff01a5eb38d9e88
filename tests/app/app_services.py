"""Throwaway PostgreSQL and Redis servers for the app tests (real servers, never mocks).

Given TS_TEST_DATABASE_URL (a superuser URL) or TS_TEST_REDIS_URL (an admin URL), the tests use those
servers and only create/drop their own role, database and ACL user there. Otherwise they install the
Debian packages if the binaries are missing and start private servers on free ports in a temp dir, as the
`postgres` user when running as root, and stop them at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg2
import redis

APP_PREFIX = "ts:"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)


def postgres_bin() -> Path:
    """Directory of initdb/pg_ctl, installing PostgreSQL from Debian if it is missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        _apt_install("postgresql")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent


def redis_server_bin() -> str:
    """Path of redis-server, installing it from Debian if it is missing."""
    path = shutil.which("redis-server")
    if path is None:
        _apt_install("redis-server")
        path = shutil.which("redis-server") or "/usr/bin/redis-server"
    return path


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root; drop to the postgres account the Debian package created.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _wait_for(check, what: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception as exc:  # noqa: BLE001 (retrying until the server answers)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {timeout}s: {exc}") from exc
            time.sleep(0.2)


def with_credentials(url: str, user: str, password: str, path: str | None = None) -> str:
    """``url`` with another user, password and optionally path (database / db number)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path if path is None else path, parts.query, ""))


@dataclass
class PostgresServer:
    """A PostgreSQL server with superuser access; owns a throwaway app role and database."""
    admin_url: str
    workdir: Path | None = None
    bin_dir: Path | None = None
    app_user: str = field(default_factory=lambda: f"ts_app_{secrets.token_hex(4)}")
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb + pg_ctl start on a free port, superuser password in a 0600 file, SCRAM over TCP."""
        bin_dir = postgres_bin()
        workdir = Path(tempfile.mkdtemp(prefix="ts-pg-"))
        password = secrets.token_urlsafe(24)
        pwfile = workdir / "pw"
        pwfile.write_text(password)
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(workdir, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        port = free_port()
        data = workdir / "data"
        subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                     f"--pwfile={pwfile}", "--auth-local=scram-sha-256",
                                     "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
        pwfile.unlink()
        options = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={workdir} "
                   "-c shared_preload_libraries=pg_stat_statements -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                                     "-l", str(workdir / "log"), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        server = cls(admin_url=f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/postgres",
                     workdir=workdir, bin_dir=bin_dir)
        _wait_for(lambda: psycopg2.connect(server.admin_url).close(), "PostgreSQL")
        return server

    def admin(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as superuser in autocommit (CREATE DATABASE cannot run in a transaction)."""
        conn = psycopg2.connect(with_credentials(self.admin_url, *self._admin_credentials(), path=f"/{database}"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def _admin_credentials(self) -> tuple[str, str]:
        parts = urlsplit(self.admin_url)
        return parts.username or "postgres", parts.password or ""

    def create_app_role(self) -> None:
        """A login role like the deploy's: no superuser, no CREATEDB/CREATEROLE."""
        self.admin(f"CREATE ROLE {self.app_user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                   f"PASSWORD '{self.app_password}'")

    def create_database(self, name: str, extensions: tuple[str, ...] = ("pg_trgm", "pg_stat_statements")) -> str:
        """A database owned by the app role, extensions created as superuser; returns the app's URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {self.app_user}")
        self.databases.append(name)
        self.admin(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; ALTER SCHEMA public OWNER TO {self.app_user}",
                   database=name)
        for extension in extensions:
            self.admin(f"CREATE EXTENSION IF NOT EXISTS {extension}", database=name)
        return with_credentials(self.admin_url, self.app_user, self.app_password, path=f"/{name}")

    def stop(self) -> None:
        """Drop what we created; stop and delete our own server."""
        if self.workdir is None:
            for name in self.databases:
                self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            self.admin(f"DROP ROLE IF EXISTS {self.app_user}")
            return
        assert self.bin_dir is not None
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.workdir / "data"),
                                     "-m", "immediate", "-w", "stop"]), check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class RedisServer:
    """A Redis with the production ACL shape: default off, app user limited to the prefix, admin user."""
    admin_url: str
    app_user: str = field(default_factory=lambda: f"ts_app_{secrets.token_hex(4)}")
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    workdir: Path | None = None
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def is_ours(self) -> bool:
        """True when this test run started the server (so it may stop and restart it)."""
        return self.workdir is not None

    @property
    def app_url(self) -> str:
        """URL the app connects with."""
        return with_credentials(self.admin_url, self.app_user, self.app_password)

    def acl_rule(self) -> str:
        """The app user's ACL rule, as docs/contracts.md specifies."""
        return f"user {self.app_user} on >{self.app_password} ~{APP_PREFIX}* resetchannels +@all -@dangerous -@admin"

    @classmethod
    def start(cls) -> RedisServer:
        """redis-server on a free loopback port with an ACL file (0600) and no persistence."""
        workdir = Path(tempfile.mkdtemp(prefix="ts-redis-"))
        admin_password = secrets.token_urlsafe(24)
        server = cls(admin_url="", workdir=workdir, port=free_port())
        server.admin_url = f"redis://admin:{quote(admin_password, safe='')}@127.0.0.1:{server.port}/0"
        acl = workdir / "users.acl"
        acl.write_text("user default off\n"
                       f"user admin on >{admin_password} ~* &* +@all\n"
                       f"{server.acl_rule()}\n")
        acl.chmod(0o600)
        conf = workdir / "redis.conf"
        conf.write_text(f"port {server.port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                        f"aclfile {acl}\ndir {workdir}\nprotected-mode yes\n")
        conf.chmod(0o600)
        server.launch()
        return server

    def launch(self) -> None:
        """Start (or restart) our redis-server and wait until it answers."""
        assert self.workdir is not None
        self.process = subprocess.Popen([redis_server_bin(), str(self.workdir / "redis.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: redis.Redis.from_url(self.admin_url).ping(), "Redis")

    def halt(self) -> None:
        """Stop our redis-server (tests of Redis outages)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def provision(self) -> None:
        """On a given server, create the app user with the same ACL rule."""
        if not self.is_ours:
            redis.Redis.from_url(self.admin_url).execute_command("ACL", "SETUSER", *self.acl_rule().split()[1:])

    def stop(self) -> None:
        """Stop our server, or remove our user and keys from a given one."""
        if self.is_ours:
            self.halt()
            assert self.workdir is not None
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        admin = redis.Redis.from_url(self.admin_url)
        for key in admin.scan_iter(match=f"{APP_PREFIX}*", count=1000):
            admin.unlink(key)
        admin.execute_command("ACL", "DELUSER", self.app_user)
