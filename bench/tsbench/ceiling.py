"""The bare-stack ceiling of part 7: Gunicorn serving a trivial Flask endpoint on the control node.

No nginx, no TLS, no PostgreSQL or Redis, no container: what Gunicorn with a given worker class, worker count
and threads can answer on this machine at all. Part 7 loads it with the same generator and step procedure as
the lab, so every configuration's figure can be read as a share of that ceiling.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

PATH = "/health"
# The app's own /health answers this (no database, no cache); the ceiling answers the same bytes.
APP = '''from flask import Flask

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok", "release": None}
'''
# The deployed Gunicorn settings the ceiling copies (the rest are Gunicorn's defaults on both sides).
COPIED = ("worker_class", "threads", "keepalive", "max_requests", "max_requests_jitter", "timeout")


def config(settings: dict[str, Any], workers: int, port: int) -> str:
    """gunicorn.conf.py for the ceiling: `workers` and the copied settings of a deployed configuration."""
    lines = [f'bind = ["127.0.0.1:{port}"]', f"workers = {int(workers)}", 'wsgi_app = "trivial:app"',
             'worker_tmp_dir = "/dev/shm"', 'loglevel = "warning"', "control_socket_disable = True"]
    for key in COPIED:
        if key in settings and not (key == "threads" and int(settings[key]) <= 1):
            value = settings[key]
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def bare_gunicorn(settings: dict[str, Any], workers: int, gunicorn: Path | None = None) -> Iterator[dict[str, Any]]:
    """Run the ceiling's Gunicorn until the block ends: yields {"url", "pid", "config"}."""
    gunicorn = gunicorn or Path(sys.executable).parent / "gunicorn"
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tsbench-ceiling-") as directory:
        (Path(directory) / "trivial.py").write_text(APP)
        conf = config(settings, workers, port)
        (Path(directory) / "gunicorn.conf.py").write_text(conf)
        log = open(Path(directory) / "gunicorn.log", "w")  # noqa: SIM115 (closed below)
        process = subprocess.Popen([str(gunicorn), "--config", "gunicorn.conf.py"], cwd=directory,
                                   stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}{PATH}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.flush()
                        raise RuntimeError("the ceiling's Gunicorn did not answer: "
                                           + (Path(directory) / "gunicorn.log").read_text()[-800:]) from None
                    time.sleep(0.2)
            yield {"url": url, "pid": process.pid, "config": conf}
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
