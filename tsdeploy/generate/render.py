"""`tsdeploy generate render`: a Render Blueprint (render.yaml) for TalentSphere, from the same context as the deploy.

The blueprint holds a Python web service (Gunicorn with the generated gunicorn.conf.py, bound to
0.0.0.0:$PORT, WEB_CONCURRENCY workers of app_threads threads each), a cron job flushing view counts, a Key
Value instance for the cache and a PostgreSQL database. The pool settings are sized so that instances x
workers x (pool + overflow) plus the inventory's connection headroom fits the database plan's connection
limit (see RENDER_CONNECTION_LIMITS). Render backs the database up itself on paid plans; no Blueprint field
controls that, so the file's header states what the chosen plan gets and what a recovery asks of the operator
(`recovery_note`).
Render's managed PostgreSQL gives a blueprint one database user (`fromDatabase` connectionString), so on
Render the app and its preDeployCommand's migrations share that role: the owner/runtime split of the deploy
(roles/postgres/README.md) has no Blueprint equivalent.
The document is validated against Render's official JSON schema (copied into schemas/) before anything is
written; an invalid document is reported by its real cause (jsonschema's best_match) and its path.

Settings come from `tsdeploy.context.build_context` for the inventory's first app host; the Render-only
choices are `render_*` inventory variables (RENDER_DEFAULTS lists them with their defaults).
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
from dataclasses import dataclass
from typing import Any

import click
import jsonschema
import yaml
from jsonschema.exceptions import best_match

from roles.registry import Group
from tsdeploy import inventory as inventory_module
from tsdeploy import templating, tuning
from tsdeploy.topology import Topology

SCHEMA_PATH = pathlib.Path(__file__).parent / "schemas" / "render-blueprint.schema.json"
GUNICORN_TEMPLATE = "app/gunicorn.conf.py.j2"
#: Where the web service's workers keep prometheus_client's multiprocess files (instance-local, emptied at start).
METRICS_DIR = "/tmp/talentsphere-metrics"

#: Render-only choices, overridable per inventory (group_vars of the app group). Why each default:
RENDER_DEFAULTS: dict[str, Any] = {
    "render_name": "talentsphere",          # prefix of every resource name in the Blueprint
    "render_region": "frankfurt",            # one region for all: services reach the database privately
    "render_root_dir": "app",                # the app's own package (pyproject, requirements.txt) in this repo
    "render_web_plan": "starter",
    "render_instances": 1,                   # web service instances (numInstances)
    "render_web_concurrency": 2,             # Gunicorn workers per instance (WEB_CONCURRENCY); starter = 0.5 CPU
    "render_database_plan": "basic-1gb",
    # Read replicas (0-5) and a high-availability standby: each an instance of the same plan, billed as one;
    # off by default (cost). Render's requirements are checked before anything is written (`replication`).
    "render_database_read_replicas": 0,
    "render_database_high_availability": False,
    "render_database_disk_gb": None,         # None: Render's default; read replicas need >= 10
    "render_keyvalue_plan": "starter",
    "render_flush_schedule": "* * * * *",    # the VM timer flushes every minute; Render's cron minimum is 1 min
}

#: Render Postgres connection limits by the instance's RAM, current-generation instance types:
#: < 8 GB: 100, 8 GB <= RAM < 16 GB: 200, 16 GB <= RAM < 32 GB: 400, >= 32 GB: 500.
#: Source: Render, "Postgres on Render: connection limits and pooling",
#: https://render.com/tutorials/postgres-on-render/connection-limits-and-pooling (legacy instance types
#: have lower limits, 97/197/397, and are not accepted here).
RENDER_CONNECTION_LIMITS: tuple[tuple[int, int], ...] = ((8, 100), (16, 200), (32, 400))
RENDER_CONNECTION_LIMIT_MAX = 500
LIMIT_SOURCE = "https://render.com/tutorials/postgres-on-render/connection-limits-and-pooling"
#: Render backs up paid Postgres instances itself (point-in-time recovery); no Blueprint field controls it, so the
#: blueprint states it as a comment. Source: Render, "PostgreSQL Recovery and Backups".
RECOVERY_SOURCE = "https://render.com/docs/postgresql-backups"
_PLAN_MEMORY = re.compile(r"^(?:basic|pro|accelerated)-(\d+)(mb|gb)$")
#: Render's prerequisites. Read replicas: Basic-1gb or higher, >= 10 GB of storage, at most five.
#: High availability: a Pro instance type or higher (and PostgreSQL >= 13, which every Debian release here has).
REPLICAS_SOURCE = "https://render.com/docs/postgresql-read-replicas"
HA_SOURCE = "https://render.com/docs/postgresql-high-availability"
MAX_READ_REPLICAS = 5
REPLICA_MIN_DISK_GB = 10
#: Instance types too small for read replicas (everything from basic-1gb up qualifies).
_NO_REPLICA_PLANS = ("free", "basic-256mb")


@dataclass(frozen=True)
class Replication:
    """What the database section gets for replicas and HA, and the header lines that explain it."""

    fields: dict[str, Any]
    notes: list[str]


def replication(r: dict[str, Any], database: str) -> Replication:
    """`readReplicas`, `highAvailability` and `diskSizeGB` from the render_database_* variables, refusing a plan
    or disk Render would refuse, with the variable, its value and the fix."""
    plan, replicas, ha = r["render_database_plan"], r["render_database_read_replicas"], \
        r["render_database_high_availability"]
    disk = r["render_database_disk_gb"]
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_READ_REPLICAS:
        raise BlueprintError(f"render_database_read_replicas = {replicas!r} is not a whole number from 0 to "
                             f"{MAX_READ_REPLICAS} (Render's limit, {REPLICAS_SOURCE}); fix: set it in group_vars")
    if not isinstance(ha, bool):
        raise BlueprintError(f"render_database_high_availability = {ha!r} is not true or false; fix: set it in "
                             "group_vars")
    if disk is not None and (isinstance(disk, bool) or not isinstance(disk, int) or disk < 1
                             or (disk != 1 and disk % 5)):
        raise BlueprintError(f"render_database_disk_gb = {disk!r} is not 1 or a multiple of 5 (Render's rule); fix: "
                             "set it in group_vars, or remove it for Render's default")
    fields: dict[str, Any] = {}
    notes: list[str] = []
    if replicas:
        if plan in _NO_REPLICA_PLANS:
            raise BlueprintError(
                f"render_database_read_replicas = {replicas} needs render_database_plan basic-1gb or larger, not "
                f"{plan!r} ({REPLICAS_SOURCE}); fix: choose a larger plan or set render_database_read_replicas to 0")
        if disk is not None and disk < REPLICA_MIN_DISK_GB:
            raise BlueprintError(
                f"render_database_read_replicas = {replicas} needs at least {REPLICA_MIN_DISK_GB} GB of storage, "
                f"but render_database_disk_gb = {disk} ({REPLICAS_SOURCE}); fix: set render_database_disk_gb to "
                f"{REPLICA_MIN_DISK_GB} or more, or remove it")
        disk = disk or REPLICA_MIN_DISK_GB
        fields["readReplicas"] = [{"name": f"{database}-replica-{n}"} for n in range(1, replicas + 1)]
        notes.append(f"Read replicas: {replicas} ({plan} each, asynchronous, {disk} GB); the app sends every query "
                     "to the primary's DATABASE_URL, so they serve what connects to their own connection strings "
                     f"(reporting, one-off queries). Source: {REPLICAS_SOURCE}")
    if ha:
        if not plan.startswith(("pro-", "accelerated-")):
            raise BlueprintError(
                f"render_database_high_availability = true needs a Pro instance type or higher, not "
                f"render_database_plan {plan!r} ({HA_SOURCE}); fix: choose a pro-* or accelerated-* plan, or set "
                "render_database_high_availability to false")
        fields["highAvailability"] = {"enabled": True}
        notes.append("High availability: a standby of the same plan replicates asynchronously; after 30 s without "
                     "an answer Render promotes it at the same URL (a few seconds of acknowledged writes may be "
                     "lost; the app's pool reconnects). Render restarts the database once to enable it, and it "
                     f"needs a team workspace. Source: {HA_SOURCE}")
    if disk is not None:
        fields["diskSizeGB"] = disk
    return Replication(fields, notes)


def recovery_note(plan: str, database: str) -> list[str]:
    """What Render's managed backups give the database plan, and what a recovery asks of the operator.

    The VM deploy's pgBackRest setup (roles/backup) does not apply on Render: Render runs the database.
    """
    if plan == "free":
        return ["Backups: NONE. Render neither backs up nor recovers a free Postgres instance; for data that",
                "matters choose a paid render_database_plan (basic-*, pro-*, accelerated-*).",
                f"Source: {RECOVERY_SOURCE}"]
    return [f"Backups: Render backs up {database} ({plan}, a paid instance) continuously for point-in-time",
            "  recovery to any moment of the last 3 days (Hobby workspace) or 7 days (Professional or higher), except",
            "  the last 10 minutes. A recovery (the database's Recovery page in the Dashboard) creates a NEW instance:",
            "  check it, then point the web service and the cron job at it (their DATABASE_URL). A Blueprint sync sets",
            f"  DATABASE_URL back to {database}, the database this file names: pause the Blueprint's automatic sync",
            "  while they use the recovery instance. Longer retention: export a logical backup in the Dashboard (kept",
            f"  7 days) and keep it elsewhere. No Blueprint field controls backups. Source: {RECOVERY_SOURCE}"]


class BlueprintError(Exception):
    """The blueprint cannot be generated: the message names the setting or the schema path and the fix."""


@dataclass(frozen=True)
class Pool:
    """SQLAlchemy pool settings per Gunicorn worker, and the arithmetic that justifies them."""

    size: int
    overflow: int
    limit: int
    budget: int
    demand: int
    note: str


def database_connection_limit(plan: str) -> tuple[int, str]:
    """The connection limit of a Render Postgres plan ("basic-1gb" -> 100) and a sentence saying why."""
    if plan == "free":
        memory_gb = 0.25  # Render's free instance type has 256 MB of RAM
    elif match := _PLAN_MEMORY.match(plan):
        memory_gb = int(match.group(1)) / (1024 if match.group(2) == "mb" else 1)
    else:
        raise BlueprintError(f"render_database_plan {plan!r} is not a current Render Postgres instance type; "
                             "fix: use free, basic-256mb, basic-1gb, basic-4gb, pro-4gb ... pro-512gb or "
                             "accelerated-16gb ... accelerated-1024gb")
    limit = next((limit for below_gb, limit in RENDER_CONNECTION_LIMITS if memory_gb < below_gb),
                 RENDER_CONNECTION_LIMIT_MAX)
    return limit, f"Render Postgres {plan} ({memory_gb:g} GB RAM) accepts {limit} connections ({LIMIT_SOURCE})"


def size_pool(*, plan: str, instances: int, workers: int, pool_size: int, max_overflow: int,
              headroom: int) -> Pool:
    """Pool settings that fit: instances x workers x (pool + overflow) <= plan limit - headroom.

    The inventory's pool is kept when it fits; otherwise each worker gets the share that fits, the pool
    first and the overflow with what is left. No share left even for one connection is an error.
    """
    limit, why = database_connection_limit(plan)
    budget = limit - headroom
    wanted = tuning.Topology(instances, workers, pool_size, max_overflow, headroom)
    if wanted.demand <= budget:
        return Pool(pool_size, max_overflow, limit, budget, wanted.demand,
                    f"{why}; {headroom} kept as headroom; {instances} instance(s) x {workers} workers x "
                    f"(pool {pool_size} + overflow {max_overflow}) = {wanted.demand} <= {budget}")
    per_worker = budget // (instances * workers)
    if per_worker < 1:
        raise BlueprintError(
            f"{instances} instances x {workers} workers cannot each get a connection within {budget} "
            f"({why}, minus {headroom} headroom); fix: lower render_instances or render_web_concurrency, "
            "choose a larger render_database_plan, or put a pooler in front of the database")
    size = min(pool_size, per_worker)
    overflow = min(max_overflow, per_worker - size)
    demand = instances * workers * (size + overflow)
    return Pool(size, overflow, limit, budget, demand,
                f"{why}; {headroom} kept as headroom; the inventory's pool {pool_size} + overflow {max_overflow} "
                f"would need {wanted.demand}, so each of {instances} instance(s) x {workers} workers gets "
                f"pool {size} + overflow {overflow} = {demand} <= {budget}")


def _check_threads_fit(threads: int, pool: Pool) -> None:
    """Refuse a pool shrunk below the threads of a worker: a thread without a connection waits, then fails.

    Inventory validation checks app_threads against the inventory's pool; `size_pool` may give each worker
    less on a small Render plan, so the check is repeated against the pool the blueprint really sets.
    """
    if threads > pool.size + pool.overflow:
        raise BlueprintError(
            f"app_threads = {threads} but each Render worker gets only pool {pool.size} + overflow "
            f"{pool.overflow} = {pool.size + pool.overflow} connections ({pool.note}); a thread without a "
            "connection waits up to DB_POOL_TIMEOUT, then fails; fix: lower app_threads to at most "
            f"{pool.size + pool.overflow}, lower render_instances or render_web_concurrency, or choose a larger "
            "render_database_plan")


@functools.cache
def schema() -> dict[str, Any]:
    """Render's official Blueprint schema (a copy shipped with the package, so validation works offline)."""
    return json.loads(SCHEMA_PATH.read_text())


#: A service's `type` -> the schema definition that describes it. The schema lists services as an anyOf of
#: these, and best_match cannot tell which branch was meant; the type says it.
_SERVICE_DEFINITIONS = {"keyvalue": "redisServer", "redis": "redisServer", "cron": "cronService",
                        "web": "serverService", "worker": "serverService", "pserv": "serverService",
                        "static": "staticService"}


def _errors(instance: Any, definition: str | None = None) -> list[jsonschema.ValidationError]:
    """Schema errors of the whole document, or of one instance against one of the schema's definitions."""
    full = schema()
    target = full if definition is None else {"$schema": full["$schema"], "definitions": full["definitions"],
                                              "$ref": f"#/definitions/{definition}"}
    return list(jsonschema.Draft202012Validator(target).iter_errors(instance))


def validate(document: dict[str, Any]) -> None:
    """Raise BlueprintError naming the real cause of a schema error (best_match) and its path, if any."""
    errors = _errors(document)
    # The schema's top-level unevaluatedProperties rejects every key whose subschema failed: a cascade,
    # reported only when nothing else explains the failure.
    causes = [error for error in errors if error.validator != "unevaluatedProperties"] or errors
    error = best_match(causes)
    if error is None:
        return
    path = error.json_path
    item = error.instance
    if list(error.path)[:1] == ["services"] and len(error.path) == 2 and isinstance(item, dict):
        definition = _SERVICE_DEFINITIONS.get(item.get("type"))
        inner = best_match(_errors(item, definition)) if definition else None
        if inner is not None:
            error, path = inner, path + inner.json_path[1:]
    raise BlueprintError(f"render.yaml does not match Render's schema at {path}: {error.message}")


def _render_vars(app_vars: dict[str, Any]) -> dict[str, Any]:
    """RENDER_DEFAULTS < the inventory's render_* variables (from the app host's merged vars)."""
    return RENDER_DEFAULTS | {name: value for name, value in app_vars.items() if name.startswith("render_")}


def _positive(r: dict[str, Any], name: str) -> int:
    value = r[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BlueprintError(f"{name} = {value!r} is not a whole number of at least 1; fix: set it in group_vars")
    return value


def blueprint(topology: Topology) -> tuple[dict[str, Any], Pool, dict[str, Any]]:
    """The render.yaml document, the pool sizing behind it, and the Render variables used.

    The services are the VM roles' own contexts (the first host of each group), so names, pool sizes,
    the cache prefix and the eviction policy are the ones the VM deploy uses.
    """
    app, postgres, redis = topology.service("app"), topology.service("postgres"), topology.service("redis")
    app_vars = topology.vars_of(topology.hosts(Group.APP)[0])
    db_vars = topology.vars_of(postgres["host"])
    r = _render_vars(app_vars)
    instances, workers = _positive(r, "render_instances"), _positive(r, "render_web_concurrency")
    pool = size_pool(plan=r["render_database_plan"], instances=instances, workers=workers,
                     pool_size=app["db_pool_size"], max_overflow=app["db_max_overflow"],
                     headroom=int(db_vars["postgresql_connection_headroom"]))
    _check_threads_fit(app["threads"], pool)
    name = r["render_name"]
    web, cron, cache, database = name, f"{name}-flush-views", f"{name}-cache", f"{name}-db"
    replicated = replication(r, database)
    links = [
        {"key": "DATABASE_URL", "fromDatabase": {"name": database, "property": "connectionString"}},
        {"key": "REDIS_URL", "fromService": {"type": "keyvalue", "name": cache, "property": "connectionString"}},
    ]
    settings = {
        "DB_POOL_TIMEOUT": app["db_pool_timeout"], "DB_POOL_RECYCLE": app["db_pool_recycle"],
        "DB_CONNECT_TIMEOUT": app["db_connect_timeout"], "DB_STATEMENT_TIMEOUT": app["db_statement_timeout"],
        "DB_BREAKER_COOLDOWN": app["db_breaker_cooldown"],
        "SLOW_QUERY_THRESHOLD": app["slow_query_threshold"], "CACHE_KEY_PREFIX": app["cache_key_prefix"],
        "FLASK_ENV": "production",
    }
    web_env = links + [
        {"key": "SECRET_KEY", "generateValue": True},
        {"key": "WEB_CONCURRENCY", "value": str(workers)},
        # Gunicorn workers share /metrics through prometheus_client's multiprocess files.
        {"key": "PROMETHEUS_MULTIPROC_DIR", "value": METRICS_DIR},
        {"key": "DB_POOL_SIZE", "value": str(pool.size)},
        {"key": "DB_MAX_OVERFLOW", "value": str(pool.overflow)},
        # Render's load balancer is the one proxy in front of the service.
        {"key": "PROXY_COUNT", "value": str(app_vars["app_proxy_count"])},
    ] + [{"key": key, "value": str(value)} for key, value in settings.items()]
    cron_env = links + [
        {"key": "SECRET_KEY", "fromService": {"type": "web", "name": web, "envVarKey": "SECRET_KEY"}},
        # A one-shot command needs one connection; the headroom above covers it.
        {"key": "DB_POOL_SIZE", "value": "1"},
        {"key": "DB_MAX_OVERFLOW", "value": "0"},
    ] + [{"key": key, "value": str(value)} for key, value in settings.items()]
    # The lock is universal (markers pick what Render's Python needs); hash-checking mode, as on the hosts.
    build = "pip install --require-hashes -r requirements.lock && pip install --no-deps . && pip check"
    document = {
        "services": [
            {
                "type": "web", "name": web, "runtime": "python", "region": r["render_region"],
                "plan": r["render_web_plan"], "numInstances": instances, "rootDir": r["render_root_dir"],
                "buildCommand": build,
                "preDeployCommand": "talentsphere migrate && talentsphere optimize-db",
                # Command-line flags override the config file: $PORT and WEB_CONCURRENCY are Render's contract.
                # The metrics directory must start empty (as /run/talentsphere does under systemd).
                "startCommand": (f"rm -rf {METRICS_DIR} && mkdir -p {METRICS_DIR} && "
                                 "gunicorn --config gunicorn.conf.py --bind 0.0.0.0:$PORT "
                                 f"--workers ${{WEB_CONCURRENCY:-{workers}}}"),
                "healthCheckPath": "/health/ready",
                "envVars": web_env,
            },
            {
                "type": "cron", "name": cron, "runtime": "python", "region": r["render_region"],
                "schedule": r["render_flush_schedule"], "rootDir": r["render_root_dir"],
                "buildCommand": build, "startCommand": "talentsphere flush-views",
                "envVars": cron_env,
            },
            {
                "type": "keyvalue", "name": cache, "region": r["render_region"], "plan": r["render_keyvalue_plan"],
                # An empty allow list: reachable only from this workspace's services over the private network.
                "ipAllowList": [],
                # Redis's own policy names, the same value as the VM deploy's redis.conf (validated there).
                "maxmemoryPolicy": redis["maxmemory_policy"],
            },
        ],
        "databases": [
            {
                "name": database, "databaseName": postgres["db_name"], "user": postgres["app_user"],
                "region": r["render_region"], "plan": r["render_database_plan"],
                "postgresMajorVersion": str(postgres["version"]),
                "ipAllowList": [],
                **replicated.fields,
            },
        ],
    }
    return document, pool, r | {"replication_notes": replicated.notes}


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people: no &anchors/*aliases for the env vars the web service and cron job share."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _header(inventory_path: pathlib.Path, pool: Pool, database: dict[str, Any], notes: list[str]) -> str:
    lines = [
        f"managed by TalentSphere Deploy - do not edit; generated by `tsdeploy generate render` from {inventory_path}.",
        "Blueprint reference: https://render.com/docs/blueprint-spec",
        "Connection budget:",
        *(f"  {part}" for part in pool.note.split("; ")),
        "SQLAlchemy opens pool connections on demand, so the old and new instances of a zero-downtime deploy",
        "rarely hold full pools at once; a larger plan or a pooler is the fix if they do.",
        *recovery_note(database["plan"], database["name"]),
        *notes,
    ]
    return "".join(f"# {line}\n" for line in lines)


def gunicorn_config(ctx: dict[str, Any], workers: int) -> str:
    """The app's gunicorn.conf.py rendered from the deploy's own template, with Render's bind and proxy.

    Render's proxy addresses are not known in advance and it is the only way in, so forwarded headers are
    trusted from any peer; the start command's --bind/--workers flags apply $PORT and WEB_CONCURRENCY. The
    worker class and threads stay the inventory's (app_threads), as on the VMs.
    """
    app = ctx["app"] | {"bind": "0.0.0.0:10000", "workers": workers, "forwarded_allow_ips": "*"}
    return templating.render(GUNICORN_TEMPLATE, ctx | {"app": app})


def generate(inventory_path: pathlib.Path, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Validate and write OUT/render.yaml and OUT/<rootDir>/gunicorn.conf.py; return the written paths.

    The blueprint carries no secret (Render generates SECRET_KEY and wires the connection strings) and no TLS
    material (Render terminates TLS), so the inventory is read without its vault and without requiring the
    control-node certificate files: a team on Render needs neither to generate it.
    """
    inventory = inventory_module.load(inventory_path, secrets=False, files=False)
    topology = Topology(inventory)
    ctx = topology.host_context(inventory.hosts_in(Group.APP)[0])
    document, pool, r = blueprint(topology)
    validate(document)
    header = _header(inventory_path, pool, document["databases"][0], r["replication_notes"])
    text = header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)
    gunicorn = gunicorn_config(ctx, r["render_web_concurrency"])
    render_yaml = out_dir / "render.yaml"
    gunicorn_path = out_dir / r["render_root_dir"] / "gunicorn.conf.py"
    gunicorn_path.parent.mkdir(parents=True, exist_ok=True)
    render_yaml.write_text(text)
    gunicorn_path.write_text(gunicorn)
    return [render_yaml, gunicorn_path]


@click.command("render")
@click.option("--inventory", "inventory_path", required=True, type=click.Path(exists=True, path_type=pathlib.Path),
              help="Inventory directory (hosts.yml + group_vars/).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Repository root to write render.yaml (and <rootDir>/gunicorn.conf.py) into.")
def render_command(inventory_path: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Write a Render Blueprint (render.yaml) and its gunicorn.conf.py, validated against Render's schema."""
    try:
        written = generate(inventory_path, out_dir)
    except (BlueprintError, inventory_module.InventoryError) as error:
        raise click.ClickException(str(error)) from None
    for path in written:
        click.echo(str(path))
