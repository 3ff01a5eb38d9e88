"""Migrations: bounded waits (lock_timeout / statement_timeout on `talentsphere migrate`'s connection) and the
expand/contract rule (app/README.md, Migrations), enforced on the offline SQL of every migration."""

from __future__ import annotations

import io
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from app_helpers import run_cli
from sqlalchemy import create_engine, pool

from talentsphere.config import migration_timeouts
from talentsphere.migrate import MIGRATIONS, MigrationError, alembic_config, upgrade
from talentsphere.models import Base

HEAD = "0003"  # the packaged head; a test revision goes on top of it
TEST_REVISION = "0004"

REVISION = '''"""{doc}"""
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
{declarations}

def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def scripts_with(root: Path, body: str, declarations: str = "", revision: str = TEST_REVISION) -> Path:
    """A copy of the packaged migrations (same env.py, same revisions) plus one revision on top of the head."""
    location = root / f"migrations_{secrets.token_hex(3)}"
    shutil.copytree(MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    indented = "\n".join(f"    {line}" for line in body.strip().splitlines())
    (location / "versions" / f"{revision}_test.py").write_text(REVISION.format(
        doc=f"test revision {revision}", revision=revision, down=HEAD, declarations=declarations, body=indented))
    return location


def _one(url: str, sql: str) -> object:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    conn.close()
    return row[0] if row else None


def _revision(url: str) -> str | None:
    return _one(url, "SELECT version_num FROM alembic_version")


def _has_column(url: str, table: str, column: str) -> bool:
    return bool(_one(url, "SELECT count(*) FROM information_schema.columns "
                          f"WHERE table_name = '{table}' AND column_name = '{column}'"))


def _has_table(url: str, table: str) -> bool:
    return _one(url, f"SELECT to_regclass('public.{table}') IS NOT NULL") is True


@pytest.fixture
def fresh_url(pg) -> str:  # noqa: ANN001
    """An empty database of the app role (migrated by the test itself)."""
    return pg.create_database(f"ts_mig_{secrets.token_hex(4)}")


@pytest.fixture
def at_head(fresh_url: str) -> str:
    """A database at the packaged head, through the real code path."""
    upgrade(fresh_url, timeouts=migration_timeouts({}))
    assert _revision(fresh_url) == HEAD
    return fresh_url


class Holder:
    """Another session with an open transaction holding the locks ``sql`` takes (a long report, say)."""

    def __init__(self, url: str, sql: str) -> None:
        self.conn = psycopg2.connect(url)
        self.conn.cursor().execute(sql)  # psycopg2 opened a transaction: the locks stay until rollback

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


# 1. Bounded waits ------------------------------------------------------------------------------------------------

def test_the_migration_connection_carries_the_timeouts(tmp_path: Path, at_head: str) -> None:
    location = scripts_with(tmp_path, """
op.execute("CREATE TABLE probe_settings AS SELECT current_setting('lock_timeout') AS lock_timeout, "
           "current_setting('statement_timeout') AS statement_timeout, "
           "current_setting('application_name') AS application_name")
""")
    upgrade(at_head, timeouts=migration_timeouts({"MIGRATION_LOCK_TIMEOUT": "750ms"}), script_location=location)
    with psycopg2.connect(at_head) as conn, conn.cursor() as cur:
        cur.execute("SELECT lock_timeout, statement_timeout, application_name FROM probe_settings")
        assert cur.fetchone() == ("750ms", "15min", "talentsphere-migrate")
    conn.close()


def test_a_migration_blocked_by_a_long_transaction_gives_up_and_changes_nothing(tmp_path: Path,
                                                                                 at_head: str) -> None:
    # Two statements in one migration: the first succeeds, the second (ALTER TABLE jobs: ACCESS EXCLUSIVE)
    # waits for a plain reader's ACCESS SHARE lock. The whole migration must roll back.
    location = scripts_with(tmp_path, """
op.create_table("probe_created", sa.Column("id", sa.Integer(), primary_key=True))
op.add_column("jobs", sa.Column("probe", sa.Text(), nullable=True))
""")
    timeouts = migration_timeouts({"MIGRATION_LOCK_TIMEOUT": "1s"})
    holder = Holder(at_head, "SELECT count(*) FROM jobs")
    queued: dict[str, float] = {}

    def read_jobs_while_the_migration_waits() -> None:
        time.sleep(0.4)  # the migration is queued for its ACCESS EXCLUSIVE lock by now
        started = time.monotonic()
        with psycopg2.connect(at_head) as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = '20s'")
            cur.execute("SELECT count(*) FROM jobs")  # queues behind the waiting ALTER TABLE
        conn.close()
        queued["seconds"] = time.monotonic() - started

    reader = threading.Thread(target=read_jobs_while_the_migration_waits)
    try:
        reader.start()
        started = time.monotonic()
        with pytest.raises(MigrationError) as failure:
            upgrade(at_head, timeouts=timeouts, script_location=location)
        waited = time.monotonic() - started
        reader.join(timeout=20)
        # The site's queries waited at most about the lock timeout, not until the long transaction ended.
        assert not reader.is_alive() and queued["seconds"] < 3, queued
        message = str(failure.value)
        assert message.startswith("migration waited more than 1s for a lock held by another transaction; "
                                  "retry when ")
        assert "or raise MIGRATION_LOCK_TIMEOUT" in message
        assert f"the database stays at revision {HEAD}" in message
        assert "ALTER TABLE jobs ADD COLUMN probe" in message
        assert 1 <= waited < 5
        # Nothing of the migration is left: its first statement was rolled back with it.
        assert _revision(at_head) == HEAD
        assert not _has_table(at_head, "probe_created")
        assert not _has_column(at_head, "jobs", "probe")
    finally:
        holder.release()
        reader.join(timeout=20)
    # Once the long transaction has ended, the same migration goes through.
    upgrade(at_head, timeouts=timeouts, script_location=location)
    assert _revision(at_head) == TEST_REVISION
    assert _has_table(at_head, "probe_created") and _has_column(at_head, "jobs", "probe")


def test_a_statement_longer_than_the_statement_timeout_is_cancelled_and_rolled_back(tmp_path: Path,
                                                                                     at_head: str) -> None:
    location = scripts_with(tmp_path, """
op.create_table("probe_created", sa.Column("id", sa.Integer(), primary_key=True))
op.execute("SELECT pg_sleep(5)")
""")
    started = time.monotonic()
    with pytest.raises(MigrationError) as failure:
        upgrade(at_head, timeouts=migration_timeouts({"MIGRATION_STATEMENT_TIMEOUT": "500ms"}),
                script_location=location)
    assert time.monotonic() - started < 4
    message = str(failure.value)
    assert message.startswith("a migration statement ran longer than 500ms and was cancelled; raise "
                              "MIGRATION_STATEMENT_TIMEOUT")
    assert f"the database stays at revision {HEAD}" in message
    assert _revision(at_head) == HEAD and not _has_table(at_head, "probe_created")


def test_talentsphere_migrate_fails_with_the_message_instead_of_waiting(at_head: str,
                                                                         app_env: dict[str, str]) -> None:
    # The console script, end to end: even Alembic's own version table is read with the lock timeout.
    holder = Holder(at_head, "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
    try:
        started = time.monotonic()
        result = run_cli({**app_env, "DATABASE_URL": at_head, "MIGRATION_LOCK_TIMEOUT": "1s"}, "migrate")
        elapsed = time.monotonic() - started
    finally:
        holder.release()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error: migration waited more than 1s for a lock held by another transaction; retry when" in result.stderr
    assert "raise MIGRATION_LOCK_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 15
    assert run_cli({**app_env, "DATABASE_URL": at_head}, "migrate").returncode == 0


@pytest.mark.parametrize("name, value", [("MIGRATION_LOCK_TIMEOUT", "5 seconds"),
                                         ("MIGRATION_STATEMENT_TIMEOUT", "-1"),
                                         ("MIGRATION_STATEMENT_TIMEOUT", "1.5min"),
                                         ("MIGRATION_LOCK_TIMEOUT", "30d")])
def test_a_bad_timeout_is_refused_before_connecting(app_env: dict[str, str], name: str, value: str) -> None:
    # A database nobody listens on: a connection attempt would fail differently.
    env = {**app_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", name: value}
    result = run_cli(env, "migrate")
    assert result.returncode == 1
    assert f"{name}={value!r} is not a PostgreSQL duration" in result.stderr
    assert "e.g. 5s" in result.stderr or "e.g. 15min" in result.stderr
    assert "127.0.0.1" not in result.stderr and "Traceback" not in result.stderr


def test_the_defaults_are_the_documented_ones() -> None:
    assert migration_timeouts({}) == {"lock_timeout": "5s", "statement_timeout": "15min"}
    assert migration_timeouts({"MIGRATION_LOCK_TIMEOUT": "", "MIGRATION_STATEMENT_TIMEOUT": "0"}) == {
        "lock_timeout": "5s", "statement_timeout": "0"}
    readme = (Path(__file__).parents[2] / "app" / "README.md").read_text()
    assert "| `MIGRATION_LOCK_TIMEOUT` | `5s` |" in readme
    assert "| `MIGRATION_STATEMENT_TIMEOUT` | `15min` |" in readme


# 2. Expand/contract --------------------------------------------------------------------------------------------
# Every release runs against the previous release's schema and the next one's (rolling deploys: old and new
# code side by side, and `talentsphere migrate` runs before the new code starts). So a migration may only
# expand the schema; a statement that breaks the previous release's queries belongs to a later release's
# migration that says so (`contract = "..."`), and one that locks a live table for the length of a scan or an
# index build needs `locks = "..."` (app/README.md, Migrations).

DESTRUCTIVE = [  # (pattern on the normalized statement, what it breaks)
    (r"^DROP (TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|TYPE|DOMAIN|SCHEMA|FUNCTION|TRIGGER)\b",
     "drops an object the previous release may use"),
    (r"\bDROP COLUMN\b", "drops a column the previous release reads or writes"),
    (r"\bRENAME\b", "renames in place: the previous release uses the old name"),
    (r"\bALTER COLUMN \S+ (SET DATA )?TYPE\b", "changes a column's type (rewrites the table under lock)"),
    (r"\bSET NOT NULL\b", "makes a column NOT NULL: the previous release may write NULL"),
    (r"^TRUNCATE\b", "deletes every row"),
]
LOCKING = [
    (r"^CREATE (UNIQUE )?INDEX (?!CONCURRENTLY)", "builds an index blocking writes; use CONCURRENTLY"),
    (r"^DROP INDEX (?!CONCURRENTLY)", "drops an index under an ACCESS EXCLUSIVE lock; use CONCURRENTLY"),
    (r"\bADD CONSTRAINT \S+ (CHECK|FOREIGN KEY)\b(?!.*\bNOT VALID\b)",
     "validates every row under lock; add it NOT VALID, then VALIDATE CONSTRAINT in another step"),
    (r"\bADD CONSTRAINT \S+ (UNIQUE|PRIMARY KEY) \(", "builds an index under lock; build it CONCURRENTLY, "
                                                      "then ADD CONSTRAINT ... USING INDEX"),
]
CREATED_TABLE = re.compile(r"^CREATE TABLE (?:IF NOT EXISTS )?\"?(\w+)\"?")
TOUCHED_TABLE = re.compile(r"^(?:ALTER TABLE (?:ONLY )?|CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?"
                           r"(?:IF NOT EXISTS )?\S+ ON (?:ONLY )?)\"?(\w+)\"?")


@dataclass
class Rendered:
    revision: str
    path: str
    contract: object
    locks: object
    statements: list[str]


def statements_of(sql: str) -> list[str]:
    """The statements of Alembic's offline output, comments dropped, whitespace collapsed."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [" ".join(chunk.split()) for chunk in "\n".join(lines).split(";\n") if chunk.strip()]


def render(location: Path) -> list[Rendered]:
    """Each revision's upgrade SQL, rendered offline (`alembic upgrade A:B --sql`) with the app's env.py."""
    config = alembic_config("postgresql+psycopg2://offline@localhost/offline", script_location=location)
    rendered = []
    for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions())):
        down = script.down_revision
        assert not isinstance(down, (tuple, list)), f"{script.path}: merge revisions are not rendered; add a rule"
        config.output_buffer = io.StringIO()
        command.upgrade(config, f"{down}:{script.revision}" if down else script.revision, sql=True)
        rendered.append(Rendered(script.revision, script.path, getattr(script.module, "contract", None),
                                 getattr(script.module, "locks", None),
                                 statements_of(config.output_buffer.getvalue())))
    return rendered


def _declared(value: object) -> bool:
    return isinstance(value, str) and len(value.strip()) >= 10


def violations(migration: Rendered) -> list[str]:
    """What the migration does that the rule forbids without a declaration."""
    created = {match[1].lower() for statement in migration.statements
               if (match := CREATED_TABLE.match(statement.upper()))}
    found = []
    for statement in migration.statements:
        upper = statement.upper()
        if not _declared(migration.contract):
            found += [f"{migration.revision}: {why}: {statement[:160]}"
                      for pattern, why in DESTRUCTIVE if re.search(pattern, upper)]
            add = re.search(r"\bADD COLUMN (.*)", upper)
            if add and "NOT NULL" in add[1] and "DEFAULT" not in add[1] and "GENERATED" not in add[1]:
                found.append(f"{migration.revision}: adds a NOT NULL column without a default: the previous "
                             f"release's INSERTs fail: {statement[:160]}")
        touched = TOUCHED_TABLE.match(upper)
        on_new_table = touched is not None and touched[1].lower() in created
        if not _declared(migration.locks) and not on_new_table:
            found += [f"{migration.revision}: {why}: {statement[:160]}"
                      for pattern, why in LOCKING if re.search(pattern, upper)]
    return found


def test_the_packaged_migrations_render_offline() -> None:
    rendered = render(MIGRATIONS)
    assert [m.revision for m in rendered][:1] == ["0001"]
    assert any(s.startswith("CREATE TABLE jobs") for s in rendered[0].statements)


def test_every_packaged_migration_expands_or_declares_its_contract_step() -> None:
    problems = [problem for migration in render(MIGRATIONS) for problem in violations(migration)]
    assert problems == [], "\n".join(problems) + "\n(app/README.md, Migrations: expand/contract)"


DESTRUCTIVE_SAMPLES = {
    "drop column": 'op.drop_column("jobs", "is_remote")',
    "drop table": 'op.drop_table("saved_jobs")',
    "rename column": 'op.alter_column("jobs", "title", new_column_name="headline")',
    "rename table": 'op.rename_table("saved_jobs", "bookmarks")',
    "change type": 'op.alter_column("jobs", "title", type_=sa.Text())',
    "set not null": 'op.alter_column("jobs", "posted_at", nullable=False)',
    "add not null column": 'op.add_column("jobs", sa.Column("region", sa.Text(), nullable=False))',
    "truncate": 'op.execute("TRUNCATE saved_jobs")',
}
LOCKING_SAMPLES = {
    "create index": 'op.create_index("ix_jobs_location_probe", "jobs", ["location"])',
    "drop index": 'op.drop_index("ix_jobs_location_probe", table_name="jobs")',
    "check constraint": 'op.create_check_constraint("ck_jobs_views_probe", "jobs", "view_count >= 0")',
    "foreign key": 'op.create_foreign_key("fk_probe", "saved_jobs", "jobs", ["job_id"], ["id"])',
    "unique constraint": 'op.create_unique_constraint("uq_jobs_title_probe", "jobs", ["title"])',
}


def _sample(tmp_path: Path, body: str, declarations: str = "") -> Rendered:
    return render(scripts_with(tmp_path, body, declarations))[-1]


@pytest.mark.parametrize("kind", DESTRUCTIVE_SAMPLES)
def test_a_destructive_migration_is_refused_unless_it_declares_a_contract_step(tmp_path: Path, kind: str) -> None:
    refused = violations(_sample(tmp_path, DESTRUCTIVE_SAMPLES[kind]))
    assert refused and all(problem.startswith(f"{TEST_REVISION}: ") for problem in refused), refused
    declared = _sample(tmp_path, DESTRUCTIVE_SAMPLES[kind],
                       'contract = "the jobs API stopped using it in release 2026.12.1"')
    assert violations(declared) == []
    assert violations(_sample(tmp_path, DESTRUCTIVE_SAMPLES[kind], 'contract = ""')) == refused


@pytest.mark.parametrize("kind", LOCKING_SAMPLES)
def test_a_table_locking_migration_is_refused_unless_it_says_why_the_lock_is_fine(tmp_path: Path,
                                                                                  kind: str) -> None:
    refused = violations(_sample(tmp_path, LOCKING_SAMPLES[kind]))
    assert refused, kind
    assert violations(_sample(tmp_path, LOCKING_SAMPLES[kind], 'locks = "job_categories has 30 rows"')) == []


@pytest.mark.parametrize("body", [
    'op.add_column("jobs", sa.Column("region", sa.Text(), nullable=True))',
    'op.add_column("jobs", sa.Column("remote_ok", sa.Boolean(), server_default="false", nullable=False))',
    'op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("name", sa.Text()))\n'
    'op.create_index("ix_tags_name", "tags", ["name"])',
    'with op.get_context().autocommit_block():\n'
    '    op.create_index("ix_jobs_location_probe", "jobs", ["location"], postgresql_concurrently=True)',
    'op.create_check_constraint("ck_probe", "jobs", "view_count >= 0", postgresql_not_valid=True)',
    'op.execute("UPDATE jobs SET view_count = 0 WHERE view_count < 0")',
])
def test_expand_steps_pass(tmp_path: Path, body: str) -> None:
    assert violations(_sample(tmp_path, body)) == []


# 3. The models match the migrated schema ----------------------------------------------------------------------

def test_the_models_match_the_schema_the_migrations_build(at_head: str) -> None:
    """A model column, table or constraint no migration creates (or the reverse) fails here, not in production."""
    engine = create_engine(at_head.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "compare_server_default": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


# 4. The packaged revisions ---------------------------------------------------------------------------------------

def _index_state(url: str, name: str) -> bool | None:
    """None: no such index; else whether it is valid."""
    return _one(url, "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                     f"WHERE c.relname = '{name}'")


def test_0002_drops_the_replaced_index_without_making_the_site_wait(fresh_url: str) -> None:
    # A database of the previous release: revision 0001 and the index its optimize-db created.
    upgrade(fresh_url, revision="0001", timeouts=migration_timeouts({}))
    with psycopg2.connect(fresh_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE INDEX ix_jobs_category_type_level ON jobs (category_id, employment_type, "
                    "experience_level) WHERE status = 'published'")
    conn.close()
    timeouts = migration_timeouts({"MIGRATION_LOCK_TIMEOUT": "2s"})
    holder = Holder(fresh_url, "SELECT count(*) FROM jobs")  # a long report: the drop waits for it to end
    failure: dict[str, BaseException] = {}

    def migrate() -> None:
        try:
            upgrade(fresh_url, timeouts=timeouts)
        except MigrationError as exc:
            failure["error"] = exc

    migration = threading.Thread(target=migrate)
    try:
        migration.start()
        time.sleep(0.5)  # the drop is waiting for the report by now
        # Reads and writes of jobs go on meanwhile: CONCURRENTLY takes no lock they queue behind.
        started = time.monotonic()
        with psycopg2.connect(fresh_url) as conn, conn.cursor() as cur:
            cur.execute("SET lock_timeout = '1s'")
            cur.execute("SELECT count(*) FROM jobs")
            cur.execute("UPDATE jobs SET view_count = view_count + 1")
        conn.close()
        assert time.monotonic() - started < 1
        migration.join(timeout=20)
    finally:
        holder.release()
        migration.join(timeout=20)
    message = str(failure["error"])
    assert message.startswith("migration waited more than 2s for a lock held by another transaction; ")
    assert "the database stays at revision 0001" in message
    assert _revision(fresh_url) == "0001"
    # Once the report has ended, the same command finishes the drop (an interrupted one leaves it INVALID).
    upgrade(fresh_url, timeouts=timeouts)
    assert _revision(fresh_url) == HEAD
    assert _index_state(fresh_url, "ix_jobs_category_type_level") is None


def test_0002_passes_on_a_database_without_the_replaced_index(fresh_url: str) -> None:
    upgrade(fresh_url, timeouts=migration_timeouts({}))
    assert _revision(fresh_url) == HEAD
    assert _index_state(fresh_url, "ix_jobs_category_type_level") is None
