"""The deploy's gunicorn.conf.py run by a real Gunicorn: workers boot without a control-server error.

Gunicorn 25.1+ starts a control socket (for `gunicornc`) at $XDG_RUNTIME_DIR/gunicorn.ctl or
~/.gunicorn/gunicorn.ctl and restarts it after every worker fork. Under the unit's ProtectSystem=strict that
path is read-only, so every worker boot logged "Control server error: [Errno 30] Read-only file system".
The rendered config disables the socket. Here the unwritable path is made by pointing HOME at a file
(root ignores permissions, so a read-only directory would not do), which fails the same way.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from app_services import free_port

from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import render

REPO = Path(__file__).resolve().parents[2]


def _unit_template_helpers():  # noqa: ANN202
    """tests/unit/test_templates_app.py's test inventory writer (one definition of the test inventory)."""
    spec = importlib.util.spec_from_file_location("ts_unit_templates_app", REPO / "tests/unit/test_templates_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rendered_gunicorn_conf(tmp_path: Path, extra: dict | None = None) -> Path:
    """gunicorn.conf.py as the deploy renders it for app1 of the unit tests' inventory (+ `extra` variables)."""
    root = tmp_path / "inventory"
    root.mkdir()
    inventory = load(_unit_template_helpers().write_inventory(root, {"app1": "198.18.9.20"}, extra))
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(render("app/gunicorn.conf.py.j2", build_context(inventory, "app1")))
    return conf


def test_gunicorns_config_loader_reads_the_control_socket_as_disabled(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from gunicorn.app.base import Application

    class ConfigOnly(Application):
        """Gunicorn's own config loading (file + command line), without an app to serve."""

        def init(self, parser, opts, args):  # noqa: ANN001, ANN202
            return {}

        def load(self):  # noqa: ANN202
            return None

    monkeypatch.setattr("sys.argv", ["gunicorn", "--config", str(rendered_gunicorn_conf(tmp_path))])
    assert ConfigOnly().cfg.control_socket_disable is True


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not answer /health")


def test_gunicorn_boots_workers_with_the_rendered_config_and_no_control_server_error(
        tmp_path, app_env) -> None:  # noqa: ANN001
    conf = rendered_gunicorn_conf(tmp_path)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    not_a_directory = tmp_path / "home-is-a-file"
    not_a_directory.write_text("")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {key: value for key, value in app_env.items() if key != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(not_a_directory), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        # The command line overrides the inventory's bind address and worker count, as Gunicorn documents.
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(conf),
                                 "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                                cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, proc)
            time.sleep(1.5)  # the arbiter (re)starts its control server after each worker fork
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text()
    assert text.count("Booting worker") >= 2, text
    assert "Control server error" not in text, text
    assert "control socket" not in text.lower(), text
    assert not (not_a_directory.parent / ".gunicorn").exists()


def _run_gunicorn(tmp_path: Path, app_env: dict[str, str], extra: dict, requests: int,
                  path: str = "/health", settled=None, starts: int = 2) -> tuple[list[int], str, float]:  # noqa: ANN001
    """Start Gunicorn with the rendered config (+ `extra`), send `requests` GETs, wait (up to 30 s) until
    `settled(log)` holds if given and /metrics counts at least `starts` worker starts, stop it: the statuses,
    the log and the worker starts /metrics counted."""
    conf = rendered_gunicorn_conf(tmp_path, extra)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    log = tmp_path / "gunicorn.log"
    statuses = []
    with log.open("w") as output:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(conf),
                                 "--bind", f"127.0.0.1:{port}", "--workers", "2"],
                                cwd=tmp_path, env={**app_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                                stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, proc)
            for _ in range(requests):
                deadline = time.monotonic() + 30
                while True:  # a replaced worker's successor may still be booting: retry refused connections
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                            statuses.append(response.status)
                        break
                    except urllib.error.HTTPError as error:
                        statuses.append(error.code)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            # A worker counts its start once it has imported the app, which may be after its first answer. Read
            # before the log settles: a /metrics request may itself get a worker replaced (memory limit).
            deadline, counted = time.monotonic() + 30, 0.0
            while counted < starts and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                        exposition = response.read().decode()
                except OSError:
                    time.sleep(0.2)
                    continue
                found = re.search(r"^talentsphere_gunicorn_worker_starts_total (\S+)$", exposition, flags=re.M)
                assert found, "/metrics has no talentsphere_gunicorn_worker_starts_total"
                counted = float(found.group(1))
                time.sleep(0.2)
            # A worker logs its replacement after its response, so the log is read until it holds still for
            # 1 s with `settled` true, not at the first moment `settled` holds.
            deadline, previous = time.monotonic() + 30, None
            while settled is not None and time.monotonic() < deadline:
                text = log.read_text()
                if text == previous and settled(text):
                    break
                previous = text
                time.sleep(1.0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return statuses, log.read_text(), counted


def test_a_worker_over_its_memory_limit_answers_then_is_replaced(tmp_path, app_env) -> None:  # noqa: ANN001
    # Any worker's private memory exceeds 1 MiB: each answers its request, then the master replaces it.
    def replaced(text: str) -> int:
        return text.count("(limit 1 MiB): replacing it")

    statuses, log, starts = _run_gunicorn(tmp_path, app_env, {"app_worker_max_memory": "1MiB"}, requests=6,
                                          settled=lambda text: text.count("Booting worker") >= 2 + replaced(text),
                                          starts=5)
    assert statuses == [200] * 6, log
    # A worker told to go still answers the connections it had accepted, so there may be fewer than six.
    assert replaced(log) >= 3, log
    assert log.count("Worker exiting") >= replaced(log), log
    assert log.count("Booting worker") >= 2 + replaced(log), log
    # The replacements are counted: the replaced workers' counter files outlive them.
    assert starts >= 2 + 3, (starts, log)
    assert starts <= log.count("Booting worker"), (starts, log)


def test_workers_under_the_memory_limit_are_kept(tmp_path, app_env) -> None:  # noqa: ANN001
    statuses, log, starts = _run_gunicorn(tmp_path, app_env, {}, requests=20)
    assert statuses == [200] * 20, log
    assert "replacing it" not in log and log.count("Booting worker") == 2, log
    assert starts == 2, log


def test_preloaded_workers_serve_database_requests(tmp_path, app_env) -> None:  # noqa: ANN001
    statuses, log, starts = _run_gunicorn(tmp_path, app_env, {"app_preload": True}, requests=20,
                                          path="/health/ready")
    assert statuses == [200] * 20, log
