"""Time the app's own query functions against PostgreSQL, with and without the 38 indexes (run on an app host).

ARGS: {"scenarios": {name: {"kind": "search", "filters": {...}} | {"kind": "dashboard", "company_id": N}},
       "variants": ["with", "without"], "repetitions": R, "warmup": W}
"without" drops the 38 indexes inside the transaction and rolls back afterwards: the same data on the same
host, and the indexes come back untouched (DROP INDEX is transactional in PostgreSQL). Every measurement
runs in its own transaction, rolled back, for both variants alike. Prints one JSON line:
{name: {variant: {"seconds": [...], "statements": n, "plan": {...}}}}.
"""

import json
import time
from decimal import Decimal

from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

from talentsphere.api.employer import dashboard_stats
from talentsphere.config import load_config
from talentsphere.indexes import INDEXES
from talentsphere.search import JobFilters, search_jobs

engine = create_engine(load_config()["DATABASE_URL"])
captured = []


@event.listens_for(engine, "before_cursor_execute")
def _capture(conn, cursor, statement, parameters, context, executemany):
    captured.append((statement, parameters))


def call(scenario, session):
    if scenario["kind"] == "search":
        filters = dict(scenario["filters"])
        for key in ("salary_min", "salary_max"):
            if key in filters:
                filters[key] = Decimal(str(filters[key]))
        return search_jobs(session, JobFilters(**filters))
    return dashboard_stats(session, scenario["company_id"])


def plan_summary(plans):
    """Node types, indexes used, temp blocks written and server time over the statements' plans.

    Temp blocks are each statement's top node's figure: EXPLAIN's buffer counters of a node include those of
    its children, so one spilling sort is reported again by every node above it, and adding the nodes up
    would count it once per level.
    """
    nodes, indexes, temp, server_ms = [], [], 0, 0.0

    def walk(node):
        nodes.append(node["Node Type"])
        if "Index Name" in node:
            indexes.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    for plan in plans:
        walk(plan["Plan"])
        temp += plan["Plan"].get("Temp Written Blocks", 0)
        server_ms += plan["Planning Time"] + plan["Execution Time"]
    return {"nodes": sorted(set(nodes)), "indexes": sorted(set(indexes)), "temp_written_blocks": temp,
            "server_ms": round(server_ms, 3)}


def measure(scenario, variant, explain):
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if variant == "without":
                for spec in INDEXES:
                    conn.execute(text(f"DROP INDEX IF EXISTS {spec.name}"))
            session = Session(bind=conn)
            captured.clear()
            started = time.perf_counter()
            call(scenario, session)
            seconds = time.perf_counter() - started
            statements = list(captured)
            plans = []
            if explain:
                for statement, parameters in statements:
                    raw = conn.connection.dbapi_connection.cursor()
                    raw.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
                    plans.append(raw.fetchone()[0][0])
            session.close()
            return seconds, len(statements), plans
        finally:
            transaction.rollback()


results = {}
for name, scenario in ARGS["scenarios"].items():
    variants = ARGS["variants"]
    out = {variant: {"seconds": []} for variant in variants}
    for variant in variants:
        for _ in range(ARGS["warmup"]):
            measure(scenario, variant, explain=False)
        _, count, plans = measure(scenario, variant, explain=True)
        out[variant]["statements"] = count
        out[variant]["plan"] = plan_summary(plans)
    for _ in range(ARGS["repetitions"]):
        for variant in variants:
            out[variant]["seconds"].append(measure(scenario, variant, explain=False)[0])
    results[name] = out
print(json.dumps(results))
