"""The app role's templates, rendered through the one context builder from a tiny inventory in tmp."""

from __future__ import annotations

import ast
import pathlib
import subprocess

import pytest
import yaml

from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

SECRET_KEY = 'k3y-with-"quotes"-$dollar-`tick`-\\backslash-9f3Kq7Lx2W'
DB_PASSWORD = "p@ss/word:with?url&chars-9f3Kq7Lx2W"


def write_inventory(root: pathlib.Path, app_hosts: dict[str, str], extra: dict | None = None) -> pathlib.Path:
    """Write a split inventory (db1, cache1, the given app hosts, lb1) with plain-text test secrets."""
    for name in ("ca.pem", "lb.pem", "lb.key", "db.pem", "db.key", "cache.pem", "cache.key"):
        (root / name).write_text(f"-----BEGIN TEST {name}-----\n")
    base = {"host_memory": "2GB", "host_cpus": 2}
    hosts = {"db1": {"private_address": "198.18.9.10", "tls_cert_file": str(root / "db.pem"),
                     "tls_key_file": str(root / "db.key")},
             "cache1": {"private_address": "198.18.9.11", "tls_cert_file": str(root / "cache.pem"),
                        "tls_key_file": str(root / "cache.key")},
             **{name: {"private_address": address} for name, address in app_hosts.items()},
             "lb1": {"private_address": "198.18.9.30", "tls_cert_file": str(root / "lb.pem"),
                     "tls_key_file": str(root / "lb.key")}}
    document = {"all": {
        "hosts": {name: {**base, **values} for name, values in hosts.items()},
        "children": {"db": {"hosts": {"db1": {}}}, "cache": {"hosts": {"cache1": {}}},
                     "app": {"hosts": {name: {} for name in app_hosts}}, "lb": {"hosts": {"lb1": {}}}},
    }}
    group_vars = root / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (root / "hosts.yml").write_text(yaml.safe_dump(document))
    settings = {
        "debian_release": "bookworm", "deploy_user": "deploy", "ssh_allow_from": ["198.18.9.0/24"],
        "tls_ca_cert_file": str(root / "ca.pem"), "nginx_server_name": "jobs.example.test",
        "postgresql_app_password": DB_PASSWORD,
        "postgresql_owner_password": "o4Nc8Vb2Xz6Lk1Jh5Gf9Ds3Aq7Wr0EtYu", "redis_app_password": "r7Kx2Qm9Vt4Lw8Zp3Hc6Nb1Jd5Fg0SyXe",
        "redis_admin_password": "a3Wq8Ez1Rt6Yu9Io2Pl5Kj7Hg4Fd0SxMv", "app_secret_key": SECRET_KEY, **(extra or {}),
    }
    (group_vars / "main.yml").write_text(yaml.safe_dump(settings))
    return root


@pytest.fixture
def inventory(tmp_path: pathlib.Path):
    return load(write_inventory(tmp_path, {"app1": "198.18.9.20", "app2": "198.18.9.21"}))


@pytest.fixture
def ctx(inventory) -> dict:
    return build_context(inventory, "app1")


def parse_env_file(text: str) -> dict[str, str]:
    """Read an EnvironmentFile the way a POSIX shell does (systemd applies the same double-quote escapes)."""
    script = f"set -a\n{text}\nenv -0"
    output = subprocess.run(["sh", "-c", script], env={}, capture_output=True, check=True).stdout.decode()
    return dict(item.split("=", 1) for item in output.split("\0") if "=" in item)


APP_TEMPLATES = sorted(path.name for path in (pathlib.Path(__file__).parents[2] / "templates" / "app").glob("*.j2"))


@pytest.mark.parametrize("template", APP_TEMPLATES)
def test_every_app_template_starts_with_the_managed_header(ctx, template):
    assert MANAGED_MARKER in render(f"app/{template}", ctx).splitlines()[0]


def test_env_file_carries_every_setting_the_app_reads(ctx):
    env = parse_env_file(render("app/env.j2", ctx))
    assert set(env) >= {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DB_POOL_SIZE", "DB_MAX_OVERFLOW",
                        "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE", "SLOW_QUERY_THRESHOLD", "CACHE_KEY_PREFIX",
                        "PROXY_COUNT", "FLASK_ENV"}
    assert env["FLASK_ENV"] == "production"
    assert env["PROXY_COUNT"] == "1"


def test_env_file_keeps_secret_key_with_shell_special_characters_intact(ctx):
    assert parse_env_file(render("app/env.j2", ctx))["SECRET_KEY"] == SECRET_KEY


def test_database_url_verifies_the_server_certificate_against_the_ca_and_quotes_the_password(ctx):
    url = parse_env_file(render("app/env.j2", ctx))["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg2://talentsphere:p%40ss%2Fword%3Awith%3Furl%26chars-9f3Kq7Lx2W"
                          "@198.18.9.10:")
    assert "sslmode=verify-full" in url
    assert f"sslrootcert={ctx['common']['ca_cert_path']}" in url


def test_redis_url_points_at_the_cache_hosts_tls_port_and_verifies_it_with_the_ca(ctx):
    url = parse_env_file(render("app/env.j2", ctx))["REDIS_URL"]
    assert url.startswith("rediss://") and url.endswith("@198.18.9.11:6380/0?ssl_ca_certs=/etc/ssl/tsdeploy/ca.pem")


def gunicorn_settings(ctx: dict) -> dict:
    """Execute the rendered gunicorn.conf.py the way Gunicorn does and return its module-level settings."""
    namespace: dict = {}
    exec(compile(render("app/gunicorn.conf.py.j2", ctx), "gunicorn.conf.py", "exec"), namespace)
    return namespace


def test_gunicorn_binds_the_private_address_and_app_port(ctx):
    assert gunicorn_settings(ctx)["bind"] == ["198.18.9.20:8000"]


def test_gunicorn_workers_default_to_two_per_cpu_plus_one(ctx):
    assert gunicorn_settings(ctx)["workers"] == 5


def test_gunicorn_workers_follow_app_workers_when_set(tmp_path):
    inventory = load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {"app_workers": 3}))
    assert gunicorn_settings(build_context(inventory, "app1"))["workers"] == 3


def gunicorn_config_with_threads(tmp_path, threads: int | None) -> str:
    """gunicorn.conf.py of app1 with app_threads set to `threads` (None: left to the role default)."""
    root = tmp_path / f"threads-{threads}"
    root.mkdir()
    extra = {} if threads is None else {"app_threads": threads}
    inventory = load(write_inventory(root, {"app1": "198.18.9.20"}, extra))
    return render("app/gunicorn.conf.py.j2", build_context(inventory, "app1"))


def test_gunicorn_runs_four_gthread_threads_per_worker_by_default(ctx):
    settings = gunicorn_settings(ctx)
    assert (settings["worker_class"], settings["threads"]) == ("gthread", 4)


def test_four_threads_render_the_same_file_as_the_default(tmp_path):
    assert gunicorn_config_with_threads(tmp_path, 4) == gunicorn_config_with_threads(tmp_path, None)


def test_one_thread_runs_the_sync_worker_without_a_threads_line(tmp_path):
    text = gunicorn_config_with_threads(tmp_path, 1)
    assert 'worker_class = "sync"' in text.splitlines()
    assert "threads =" not in text


def gunicorn_config_with(tmp_path, name: str, extra: dict) -> dict:
    """The settings gunicorn.conf.py of app1 defines with `extra` inventory variables."""
    root = tmp_path / name
    root.mkdir()
    inventory = load(write_inventory(root, {"app1": "198.18.9.20"}, extra))
    return gunicorn_settings(build_context(inventory, "app1"))


def test_workers_are_not_recycled_by_count_by_default_but_by_private_memory(ctx):
    settings = gunicorn_settings(ctx)
    assert settings["max_requests"] == 0 and "max_requests_jitter" not in settings
    assert settings["WORKER_MAX_MEMORY"] == 256 * 2**20 and callable(settings["post_request"])


def test_a_request_count_cap_renders_with_its_jitter(tmp_path):
    settings = gunicorn_config_with(tmp_path, "cap", {"app_max_requests": 50000, "app_max_requests_jitter": 5000})
    assert (settings["max_requests"], settings["max_requests_jitter"]) == (50000, 5000)


def test_a_zero_memory_limit_renders_no_memory_hook(tmp_path):
    settings = gunicorn_config_with(tmp_path, "nolimit", {"app_worker_max_memory": 0})
    assert "post_request" not in settings and "WORKER_MAX_MEMORY" not in settings


def test_preload_is_off_by_default_and_on_when_asked(ctx, tmp_path):
    assert gunicorn_settings(ctx)["preload_app"] is False
    assert gunicorn_config_with(tmp_path, "preload", {"app_preload": True})["preload_app"] is True


def test_gunicorn_writes_no_access_line_by_default_and_one_per_request_when_asked(ctx, tmp_path):
    # nginx on the lb logs every request; Gunicorn's line to the journal is opt-in.
    assert gunicorn_settings(ctx)["accesslog"] is None
    assert gunicorn_config_with(tmp_path, "access", {"app_access_log": True})["accesslog"] == "-"
    assert gunicorn_settings(ctx)["errorlog"] == "-"


def test_threads_run_the_gthread_worker_with_that_many_threads(tmp_path):
    namespace: dict = {}
    exec(compile(gunicorn_config_with_threads(tmp_path, 4), "gunicorn.conf.py", "exec"), namespace)
    assert (namespace["worker_class"], namespace["threads"]) == ("gthread", 4)


@pytest.mark.parametrize("threads, worker", [(1, "SyncWorker"), (4, "ThreadWorker")])
def test_gunicorn_itself_reads_the_worker_class_and_threads(tmp_path, monkeypatch, threads, worker):
    from gunicorn.app.base import Application

    class ConfigOnly(Application):
        """Gunicorn's own config loading (file + command line), without an app to serve."""

        def init(self, parser, opts, args):  # noqa: ANN001
            return {}

        def load(self):  # noqa: ANN201
            return None

    config = tmp_path / "gunicorn.conf.py"
    config.write_text(gunicorn_config_with_threads(tmp_path, threads))
    monkeypatch.setattr("sys.argv", ["gunicorn", "--config", str(config)])
    cfg = ConfigOnly().cfg
    assert (cfg.threads, cfg.worker_class.__name__) == (threads, worker)


def test_threads_change_only_the_worker_class_and_add_the_threads_setting(tmp_path):
    # Everything else (workers, timeouts, hooks) must stay as the sync worker's file has it.
    sync = gunicorn_config_with_threads(tmp_path, 1).splitlines()
    threaded = gunicorn_config_with_threads(tmp_path, 5).splitlines()
    added = [line for line in threaded if line not in sync]
    removed = [line for line in sync if line not in threaded]
    assert removed == ['worker_class = "sync"']
    assert [line for line in added if not line.startswith("#")] == ['worker_class = "gthread"', "threads = 5"]


def test_gunicorn_config_sets_the_production_settings(ctx):
    settings = gunicorn_settings(ctx)
    assert settings["preload_app"] is False
    assert settings["worker_tmp_dir"] == "/dev/shm"
    assert settings["timeout"] == 30 and settings["graceful_timeout"] == 30 and settings["keepalive"] == 5
    assert (settings["limit_request_line"], settings["limit_request_fields"],
            settings["limit_request_field_size"]) == (4094, 100, 8190)


def test_gunicorn_trusts_forwarded_headers_only_from_lb_hosts(ctx):
    assert gunicorn_settings(ctx)["forwarded_allow_ips"] == "198.18.9.30"


def test_gunicorn_config_is_valid_python(ctx):
    ast.parse(render("app/gunicorn.conf.py.j2", ctx))


def unit_directives(text: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


@pytest.mark.parametrize("directive, value", [
    ("User", "talentsphere"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
    ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("CapabilityBoundingSet", ""),
    ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"), ("UMask", "0077"),
    ("EnvironmentFile", "/etc/talentsphere/env"), ("ExecReload", "/bin/kill -s HUP $MAINPID"),
])
def test_service_unit_is_hardened_per_the_baseline(ctx, directive, value):
    assert value in unit_directives(render("app/talentsphere.service.j2", ctx))[directive]


def test_service_unit_runs_gunicorn_through_the_current_link(ctx):
    exec_start = unit_directives(render("app/talentsphere.service.j2", ctx))["ExecStart"][0]
    assert exec_start.startswith("/opt/talentsphere/current/bin/python -m gunicorn")


def test_service_unit_allows_ip_traffic_only_with_its_peers(ctx):
    allowed = unit_directives(render("app/talentsphere.service.j2", ctx))["IPAddressAllow"][0].split()
    assert set(allowed) == {"localhost", "198.18.9.10", "198.18.9.11", "198.18.9.20", "198.18.9.30"}


def test_flush_views_timer_fires_every_minute(ctx):
    assert unit_directives(render("app/talentsphere-flush-views.timer.j2", ctx))["OnCalendar"] == ["*-*-* *:*:00"]


def test_the_database_outage_settings_reach_the_apps_environment(tmp_path):
    inventory = load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {
        "app_db_connect_timeout": 3, "app_db_statement_timeout": 7.5, "app_db_breaker_cooldown": 0.25}))
    env = render("app/env.j2", build_context(inventory, "app1"))
    for line in ('DB_CONNECT_TIMEOUT="3"', 'DB_STATEMENT_TIMEOUT="7.5"', 'DB_BREAKER_COOLDOWN="0.25"'):
        assert f"\n{line}\n" in env


def test_a_connect_timeout_libpq_would_not_honour_is_refused_before_any_connection(tmp_path):
    from tsdeploy.inventory import InventoryError

    with pytest.raises(InventoryError) as raised:
        load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {"app_db_connect_timeout": 1}))
    assert any(problem.startswith("app1: app_db_connect_timeout = 1 (") and "between 2 and 60" in problem
               for problem in raised.value.problems), raised.value.problems
