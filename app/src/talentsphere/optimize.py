"""`talentsphere optimize-db`: create the 38 indexes concurrently, rebuild invalid ones, VACUUM ANALYZE.

CONCURRENTLY because, unlike a plain CREATE INDEX, it does not block writes to a live table while it builds;
it runs in autocommit because CREATE INDEX CONCURRENTLY cannot run inside a transaction. An interrupted run
leaves INVALID indexes, which the next run detects (pg_index.indisvalid) and rebuilds. VACUUM (ANALYZE)
rather than ANALYZE alone: fresh statistics for the planner, and a current visibility map so that the
covering indexes give index-only scans right after a bulk load instead of waiting for autovacuum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from .indexes import INDEXES, REQUIRED_EXTENSIONS, TABLES

STATE_SQL = text(
    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
)


class MissingExtensionError(RuntimeError):
    """An extension the indexes need is not installed in the database."""


@dataclass
class OptimizeReport:
    """What optimize-db did, index names by outcome."""
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    analyzed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for humans and logs."""
        return (f"indexes: {len(self.created)} created, {len(self.present)} present, "
                f"{len(self.rebuilt)} rebuilt; vacuumed and analyzed {len(self.analyzed)} tables")


def check_extensions(engine: Engine) -> None:
    """Fail with the fix when an extension the indexes need is missing (the app role cannot create it)."""
    with engine.connect() as conn:
        installed = set(conn.scalars(text("SELECT extname FROM pg_extension")))
        database = conn.scalar(text("SELECT current_database()"))
    for name in REQUIRED_EXTENSIONS:
        if name not in installed:
            raise MissingExtensionError(
                f"extension {name} is not installed in database {database}; as a superuser run "
                f"\"CREATE EXTENSION IF NOT EXISTS {name};\" in that database (the deploy's postgres role "
                f"does this), then run talentsphere optimize-db again")


def index_states(engine: Engine) -> dict[str, bool]:
    """Existing index name -> is valid."""
    with engine.connect() as conn:
        return {name: valid for name, valid in conn.execute(STATE_SQL)}


def optimize(engine: Engine) -> OptimizeReport:
    """Create missing indexes, rebuild invalid ones, VACUUM (ANALYZE) the indexed tables."""
    check_extensions(engine)
    report = OptimizeReport()
    states = index_states(engine)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        for spec in INDEXES:
            valid = states.get(spec.name)
            if valid is True:
                report.present.append(spec.name)
                continue
            if valid is False:
                # Left INVALID by an interrupted concurrent build: drop and build it again.
                conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {spec.name}"))
                report.rebuilt.append(spec.name)
            else:
                report.created.append(spec.name)
            conn.execute(text(spec.create_sql()))
        for table in TABLES:
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
            report.analyzed.append(table)
    return report
