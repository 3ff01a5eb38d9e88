"""`tsdeploy generate render` writes a render.yaml that Render's own schema accepts, sized to the plan's limit,
stating what Render's managed backups give the database plan."""

from __future__ import annotations

import copy
import pathlib
import re
import secrets

import pytest
import yaml
from click.testing import CliRunner

from tsdeploy import ROOT
from tsdeploy.generate import generate as generate_group
from tsdeploy.generate import render

EXAMPLE_INVENTORY = ROOT / "inventories" / "production.example"


def write_inventory(root: pathlib.Path, extra_vars: str = "") -> pathlib.Path:
    """A tiny but valid split inventory in `root` (throwaway secrets, dummy PEM paths that exist)."""
    (root / "group_vars" / "all").mkdir(parents=True)
    pem = root / "tls.pem"
    pem.write_text("not a real certificate: only its presence is checked\n")
    (root / "hosts.yml").write_text(
        "all:\n  children:\n"
        "    db:\n      hosts:\n        db1: {private_address: 10.0.0.11}\n"
        "    cache:\n      hosts:\n        cache1: {private_address: 10.0.0.12}\n"
        "    app:\n      hosts:\n        app1: {private_address: 10.0.0.13}\n"
        "    lb:\n      hosts:\n        lb1: {private_address: 10.0.0.14}\n")
    (root / "group_vars" / "all" / "main.yml").write_text(
        f"host_memory: 4GB\nhost_cpus: 2\ndebian_release: bookworm\n"
        f"tls_ca_cert_file: {pem}\ntls_cert_file: {pem}\ntls_key_file: {pem}\n"
        f"postgresql_app_password: {secrets.token_hex(16)}\npostgresql_owner_password: {secrets.token_hex(16)}\n"
        f"redis_app_password: {secrets.token_hex(16)}\n"
        f"redis_admin_password: {secrets.token_hex(16)}\napp_secret_key: {secrets.token_hex(32)}\n"
        f"nginx_server_name: jobs.example.com\n{extra_vars}")
    return root


@pytest.fixture
def tiny_inventory(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_inventory(tmp_path / "inventory")


def generate(inventory: pathlib.Path, out: pathlib.Path):
    return CliRunner().invoke(generate_group, ["render", "--inventory", str(inventory), "--out", str(out)])


def load_blueprint(out: pathlib.Path) -> dict:
    return yaml.safe_load((out / "render.yaml").read_text())


def service(document: dict, kind: str) -> dict:
    (found,) = [item for item in document["services"] if item["type"] == kind]
    return found


def env(item: dict) -> dict:
    return {var["key"]: var for var in item["envVars"]}


def test_generated_blueprint_validates_against_renders_schema(tiny_inventory: pathlib.Path,
                                                              tmp_path: pathlib.Path) -> None:
    result = generate(tiny_inventory, tmp_path / "out")
    assert result.exit_code == 0, result.output
    render.validate(load_blueprint(tmp_path / "out"))


def test_example_inventory_blueprint_validates_against_renders_schema(tmp_path: pathlib.Path) -> None:
    result = generate(EXAMPLE_INVENTORY, tmp_path)
    assert result.exit_code == 0, result.output
    render.validate(load_blueprint(tmp_path))


def test_web_service_follows_renders_contract(tiny_inventory: pathlib.Path, tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    web = service(load_blueprint(tmp_path), "web")
    assert web["runtime"] == "python" and web["rootDir"] == "app"
    assert web["preDeployCommand"] == "talentsphere migrate && talentsphere optimize-db"
    assert "--bind 0.0.0.0:$PORT" in web["startCommand"]
    assert "--workers ${WEB_CONCURRENCY:-2}" in web["startCommand"]
    assert "--config gunicorn.conf.py" in web["startCommand"]
    assert web["healthCheckPath"] == "/health/ready"
    assert web["startCommand"].startswith(f"rm -rf {render.METRICS_DIR} && mkdir -p {render.METRICS_DIR} && ")
    variables = env(web)
    assert variables["DATABASE_URL"]["fromDatabase"] == {"name": "talentsphere-db", "property": "connectionString"}
    assert variables["REDIS_URL"]["fromService"] == {"type": "keyvalue", "name": "talentsphere-cache",
                                                     "property": "connectionString"}
    assert variables["SECRET_KEY"] == {"key": "SECRET_KEY", "generateValue": True}
    assert variables["PROMETHEUS_MULTIPROC_DIR"]["value"] == render.METRICS_DIR


def test_no_secret_from_the_inventory_reaches_the_generated_files(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory")
    generate(inventory, tmp_path / "out")
    secrets_in_inventory = [line.split(": ", 1)[1] for line in
                            (inventory / "group_vars" / "all" / "main.yml").read_text().splitlines()
                            if "password" in line or "secret" in line]
    written = "".join(path.read_text() for path in (tmp_path / "out").rglob("*") if path.is_file())
    assert secrets_in_inventory and not any(secret in written for secret in secrets_in_inventory)


def test_database_and_keyvalue_are_private_with_a_string_major_version(tiny_inventory: pathlib.Path,
                                                                        tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    document = load_blueprint(tmp_path)
    (database,) = document["databases"]
    assert database["postgresMajorVersion"] == "15"  # bookworm's PostgreSQL, the same as the VM deploy
    assert database["ipAllowList"] == []
    cache = service(document, "keyvalue")
    assert cache["ipAllowList"] == [] and cache["maxmemoryPolicy"] == "volatile-lru"
    assert "postgresMajorVersion: '15'" in (tmp_path / "render.yaml").read_text()


def test_keyvalue_eviction_policy_is_the_inventorys_redis_policy(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "redis_maxmemory_policy: volatile-lfu\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert service(load_blueprint(tmp_path / "out"), "keyvalue")["maxmemoryPolicy"] == "volatile-lfu"


def test_an_allkeys_policy_is_refused_before_anything_is_written(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "redis_maxmemory_policy: allkeys-lru\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 1
    assert "cache1: redis_maxmemory_policy = 'allkeys-lru'" in result.output
    assert not (tmp_path / "out" / "render.yaml").exists()


def test_cron_job_flushes_view_counts_every_minute(tiny_inventory: pathlib.Path, tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    cron = service(load_blueprint(tmp_path), "cron")
    assert cron["startCommand"] == "talentsphere flush-views"
    assert cron["schedule"] == "* * * * *"
    assert env(cron)["SECRET_KEY"]["fromService"]["envVarKey"] == "SECRET_KEY"


def test_pool_fits_the_database_plan_and_the_file_says_which_limit(tiny_inventory: pathlib.Path,
                                                                   tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    text = (tmp_path / "render.yaml").read_text()
    web = service(yaml.safe_load(text), "web")
    variables = env(web)
    workers = int(variables["WEB_CONCURRENCY"]["value"])
    per_worker = int(variables["DB_POOL_SIZE"]["value"]) + int(variables["DB_MAX_OVERFLOW"]["value"])
    assert web["numInstances"] * workers * per_worker <= 100 - 10  # basic-1gb: 100, minus the headroom
    assert "basic-1gb (1 GB RAM) accepts 100 connections" in text
    assert render.LIMIT_SOURCE in text


def test_pool_shrinks_to_fit_when_instances_times_workers_would_exceed_the_limit() -> None:
    pool = render.size_pool(plan="basic-1gb", instances=3, workers=5, pool_size=5, max_overflow=5, headroom=10)
    # 3 x 5 x 10 = 150 > 90: each worker gets 90 // 15 = 6 connections, pool 5 + overflow 1.
    assert (pool.size, pool.overflow, pool.demand) == (5, 1, 90)


@pytest.mark.parametrize("plan, limit", [("basic-256mb", 100), ("pro-8gb", 200), ("pro-16gb", 400),
                                         ("pro-32gb", 500), ("accelerated-1024gb", 500), ("free", 100)])
def test_connection_limit_follows_the_plans_memory(plan: str, limit: int) -> None:
    assert render.database_connection_limit(plan)[0] == limit


def test_demand_that_cannot_fit_any_pool_is_an_error_naming_the_fix(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "render_instances: 10\nrender_web_concurrency: 10\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 1
    assert "render_instances" in result.output and "render_database_plan" in result.output
    assert not (tmp_path / "out" / "render.yaml").exists()


def test_unknown_database_plan_is_rejected_by_name(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "render_database_plan: huge\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 1 and "render_database_plan 'huge'" in result.output


def test_schema_error_names_the_path_of_the_real_cause(tiny_inventory: pathlib.Path, tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    document = copy.deepcopy(load_blueprint(tmp_path))
    document["databases"][0]["postgresMajorVersion"] = 15  # a number, not the string Render requires
    with pytest.raises(render.BlueprintError, match=r"\$\.databases\[0\]\.postgresMajorVersion: 15 is not of type"):
        render.validate(document)


def test_invalid_region_is_reported_at_its_path_and_nothing_is_written(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "render_region: mars\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 1
    # The real cause inside the service's own definition, not "not valid under any of the given schemas".
    assert re.search(r"at \$\.services\[\d\]\.region: 'mars' is not one of", result.output), result.output
    assert not (tmp_path / "out" / "render.yaml").exists()


def test_gunicorn_config_comes_from_the_deploys_template(tiny_inventory: pathlib.Path, tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    config = (tmp_path / "app" / "gunicorn.conf.py").read_text()
    assert "managed by TalentSphere Deploy" in config
    assert 'wsgi_app = "talentsphere.wsgi:app"' in config
    assert "workers = 2" in config
    assert 'forwarded_allow_ips = "*"' in config
    compile(config, "gunicorn.conf.py", "exec")


def test_gunicorn_config_runs_the_roles_default_gthread_worker(tiny_inventory: pathlib.Path,
                                                               tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    lines = (tmp_path / "app" / "gunicorn.conf.py").read_text().splitlines()
    assert 'worker_class = "gthread"' in lines and "threads = 4" in lines


def test_gunicorn_config_carries_the_inventorys_threads(tmp_path: pathlib.Path) -> None:
    result = generate(write_inventory(tmp_path / "inventory", "app_threads: 4\n"), tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "out" / "app" / "gunicorn.conf.py").read_text().splitlines()
    assert 'worker_class = "gthread"' in lines and "threads = 4" in lines


def test_threads_beyond_the_pool_sized_for_the_plan_are_refused_before_anything_is_written(
        tmp_path: pathlib.Path) -> None:
    # The inventory's pool (5 + 5) takes 8 threads; 3 instances x 5 workers on basic-1gb leave 6 per worker.
    inventory = write_inventory(tmp_path / "inventory",
                                "app_threads: 8\nrender_instances: 3\nrender_web_concurrency: 5\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 1
    assert "app_threads = 8 but each Render worker gets only pool 5 + overflow 1 = 6 connections" in result.output
    assert "fix: lower app_threads to at most 6" in result.output
    assert not (tmp_path / "out" / "render.yaml").exists()


def _header(out: pathlib.Path) -> str:
    return "".join(line for line in (out / "render.yaml").read_text().splitlines(keepends=True)
                   if line.startswith("#"))


def test_a_paid_database_plan_states_renders_recovery_window_and_what_a_recovery_asks(
        tiny_inventory: pathlib.Path, tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    header = " ".join(line.lstrip("# ").strip() for line in _header(tmp_path).splitlines())
    assert "Render backs up talentsphere-db (basic-1gb, a paid instance) continuously for point-in-time" in header
    assert "last 3 days (Hobby workspace) or 7 days (Professional or higher), except the last 10 minutes" in header
    assert "creates a NEW instance" in header and "point the web service and the cron job at it" in header
    assert "No Blueprint field controls backups" in header and render.RECOVERY_SOURCE in header


def test_a_free_database_plan_says_it_has_no_backups(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "render_database_plan: free\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 0, result.output
    header = _header(tmp_path / "out")
    assert "# Backups: NONE. Render neither backs up nor recovers a free Postgres instance" in header
    assert "continuously" not in header


def test_backups_are_a_comment_never_a_field_the_schema_does_not_have(tiny_inventory: pathlib.Path,
                                                                      tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    (database,) = load_blueprint(tmp_path)["databases"]
    allowed = set(render.schema()["definitions"]["database"]["properties"])
    assert set(database) <= allowed and not any("backup" in key.lower() or "recovery" in key.lower()
                                                for key in allowed)


# --- read replicas and high availability ----------------------------------------------------------------------

def test_by_default_the_database_has_no_replica_no_standby_and_renders_disk_size(tiny_inventory: pathlib.Path,
                                                                                tmp_path: pathlib.Path) -> None:
    generate(tiny_inventory, tmp_path)
    (database,) = load_blueprint(tmp_path)["databases"]
    assert not {"readReplicas", "highAvailability", "diskSizeGB"} & set(database)


def test_read_replicas_and_a_standby_on_a_pro_plan_validate_against_renders_schema(tmp_path: pathlib.Path) -> None:
    inventory = write_inventory(tmp_path / "inventory", "render_database_plan: pro-4gb\n"
                                "render_database_read_replicas: 2\nrender_database_high_availability: true\n")
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code == 0, result.output
    document = load_blueprint(tmp_path / "out")
    render.validate(document)
    (database,) = document["databases"]
    assert database["readReplicas"] == [{"name": "talentsphere-db-replica-1"}, {"name": "talentsphere-db-replica-2"}]
    assert database["highAvailability"] == {"enabled": True}
    assert database["diskSizeGB"] == render.REPLICA_MIN_DISK_GB  # Render's floor for replicas, stated
    header = " ".join(line.lstrip("# ").strip() for line in _header(tmp_path / "out").splitlines())
    assert "Read replicas: 2 (pro-4gb each, asynchronous, 10 GB)" in header and render.REPLICAS_SOURCE in header
    assert "High availability: a standby of the same plan" in header and render.HA_SOURCE in header


@pytest.mark.parametrize(("extra", "message"), [
    ("render_database_high_availability: true\n",
     "render_database_high_availability = true needs a Pro instance type or higher, not render_database_plan "
     "'basic-1gb'"),
    ("render_database_plan: basic-256mb\nrender_database_read_replicas: 1\n",
     "render_database_read_replicas = 1 needs render_database_plan basic-1gb or larger, not 'basic-256mb'"),
    ("render_database_read_replicas: 6\n", "render_database_read_replicas = 6 is not a whole number from 0 to 5"),
    ("render_database_read_replicas: 1\nrender_database_disk_gb: 5\n",
     "needs at least 10 GB of storage, but render_database_disk_gb = 5"),
    ("render_database_disk_gb: 12\n", "render_database_disk_gb = 12 is not 1 or a multiple of 5"),
    ("render_database_high_availability: 'yes'\n", "render_database_high_availability = 'yes' is not true or false"),
])
def test_a_replica_or_standby_render_would_refuse_is_refused_before_anything_is_written(
        tmp_path: pathlib.Path, extra: str, message: str) -> None:
    inventory = write_inventory(tmp_path / "inventory", extra)
    result = generate(inventory, tmp_path / "out")
    assert result.exit_code != 0 and message in result.output and "fix:" in result.output, result.output
    assert not (tmp_path / "out" / "render.yaml").exists()
