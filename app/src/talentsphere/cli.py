"""The `talentsphere` console script: migrate, optimize-db, seed, flush-views, monitor.

Configuration comes from the environment exactly as for the web app (DATABASE_URL, REDIS_URL, ...).
Logs go to stderr, results to stdout; a failure exits non-zero with a message naming the fix.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .cache import Cache
from .config import ConfigError, load_config
from .db import Database


def _config() -> dict[str, Any]:
    try:
        return load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database(config: dict[str, Any]) -> Database:
    database = Database()
    database.configure(config)
    return database


def _cache(config: dict[str, Any]) -> Cache:
    return Cache(config["REDIS_URL"], config["CACHE_KEY_PREFIX"], socket_timeout=2.0,
                 cooldown=config["REDIS_BREAKER_COOLDOWN"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """TalentSphere backend operations (configuration from the environment)."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to the newest.

    Each migration runs in its own transaction with lock_timeout = MIGRATION_LOCK_TIMEOUT (5s) and
    statement_timeout = MIGRATION_STATEMENT_TIMEOUT (15min); hitting one rolls that migration back.
    """
    from .config import migration_timeouts
    from .migrate import MigrationError, upgrade

    config = _config()
    try:
        timeouts = migration_timeouts()  # before any connection
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        upgrade(config["DATABASE_URL"], timeouts=timeouts)
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("migrations applied")


@main.command("optimize-db")
def optimize_db() -> None:
    """Create the 38 performance indexes concurrently, rebuild invalid ones, ANALYZE."""
    from .optimize import MissingExtensionError, optimize

    database = _database(_config())
    assert database.engine is not None
    try:
        report = optimize(database.engine)
    except MissingExtensionError as exc:
        raise click.ClickException(str(exc)) from None
    for label, names in (("created", report.created), ("rebuilt", report.rebuilt)):
        for name in names:
            click.echo(f"{label}: {name}")
    click.echo(report.summary())


@main.command()
@click.option("--jobs", "jobs", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N",
              help="Number of jobs to generate (companies, users, applications scale with it).")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, metavar="S",
              help="Random seed: the same N and S give the same data.")
def seed(jobs: int, seed_value: int) -> None:
    """Fill an empty database with deterministic, realistic data (skipped if jobs exist)."""
    from .seed import seed as run_seed

    database = _database(_config())
    assert database.engine is not None
    click.echo(run_seed(database.engine, jobs, seed_value).summary())


@main.command("flush-views")
def flush_views() -> None:
    """Write buffered job views from Redis to PostgreSQL (one statement per flush)."""
    from .view_counts import ViewCounter

    config = _config()
    database = _database(config)
    assert database.engine is not None
    try:
        result = ViewCounter(_cache(config), database.engine).flush()
    except Exception as exc:  # Redis or PostgreSQL down: the buffered views stay for the next run.
        raise click.ClickException(f"flush failed, buffered views kept for the next run: {exc}") from None
    click.echo(f"flushed {result.views} views of {result.jobs} jobs")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def monitor(as_json: bool) -> None:
    """Show CPU, memory, disk, PostgreSQL, pool and Redis figures."""
    from .monitor import collect, render_text

    config = _config()
    report = collect(_database(config), _cache(config), config["SLOW_QUERY_THRESHOLD"])
    click.echo(json.dumps(report, default=str, indent=2) if as_json else render_text(report))


if __name__ == "__main__":
    sys.exit(main())
