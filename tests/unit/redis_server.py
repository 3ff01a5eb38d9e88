"""A throwaway redis-server for unit tests that run the Redis role's live scripts against the real thing.

Started on a free loopback port in the test's temp dir with the configuration the test writes, asked as the
ACL user `admin`, and stopped with SIGTERM (Redis saves its RDB snapshot on the way out, as under systemd).
"""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """redis-server in `directory`; `password` is the `admin` user's, which the configuration must define."""

    def __init__(self, directory: pathlib.Path, password: str) -> None:
        self.directory, self.password, self.port, self.process = directory, password, free_port(), None
        #: Set when the configuration serves a unix socket: `cli` then uses it (a TLS-only Redis has no plain port).
        self.socket: pathlib.Path | None = None

    def start_with(self, conf_text: str) -> None:
        config = self.directory / "redis.conf"
        config.write_text(conf_text)
        self.process = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def cli(self, *args: str) -> str:
        where = ["-s", str(self.socket)] if self.socket else ["-p", str(self.port)]
        result = subprocess.run(["redis-cli", "--no-auth-warning", "--user", "admin", "--pass", self.password,
                                 *where, *args], capture_output=True, text=True, check=False)
        return result.stdout.strip()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
