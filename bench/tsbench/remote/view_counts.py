"""Views: the app's buffered path (HINCRBY per view, one bulk UPDATE per flush) vs one UPDATE per view.

ARGS: {"views": N, "jobs": [job ids], "repetitions": R, "warmup": W}. Views are spread over the given jobs
with a skew (a few popular jobs get most views), the same sequence for both variants. Prints one JSON line:
{"bulk": {"record_seconds": [...], "flush_seconds": [...], "seconds": [...], "statements": [...]},
 "per_view": {"seconds": [...], "statements": [...]}}
"""

import json
import time

from sqlalchemy import event

from talentsphere.cache import Cache
from talentsphere.config import load_config
from talentsphere.db import make_engine
from talentsphere.view_counts import DIRECT_UPDATE, ViewCounter

config = load_config()
engine = make_engine(config)
# Its own key prefix, so its own buffer and flush lock: the deployed apps' periodic flush would otherwise take
# the lock or the buffer mid-measurement and the figures would count their statements, not this run's.
cache = Cache(config["REDIS_URL"], config["CACHE_KEY_PREFIX"] + "bench:", socket_timeout=2.0)
counter = ViewCounter(cache, engine)
statements = [0]


@event.listens_for(engine, "before_cursor_execute")
def _count(conn, cursor, statement, parameters, context, executemany):
    statements[0] += 1


jobs = ARGS["jobs"]
# Skewed but deterministic: view i goes to job (i*i) mod len(jobs), so low indexes repeat more often.
sequence = [jobs[(i * i) % len(jobs)] for i in range(ARGS["views"])]


def bulk():
    counter.flush()  # start from an empty buffer
    statements[0] = 0
    started = time.perf_counter()
    for job_id in sequence:
        if not counter.record(job_id):
            raise SystemExit("Redis is down: the buffered path fell back to direct writes")
    recorded = time.perf_counter()
    flushed = counter.flush()
    done = time.perf_counter()
    if flushed.views != len(sequence):
        raise SystemExit(f"the flush wrote {flushed.views} of {len(sequence)} views (skipped: {flushed.skipped})")
    return {"record_seconds": recorded - started, "flush_seconds": done - recorded, "seconds": done - started,
            "statements": statements[0]}


def per_view():
    statements[0] = 0
    started = time.perf_counter()
    for job_id in sequence:
        with engine.begin() as conn:
            conn.execute(DIRECT_UPDATE, {"id": job_id})
    return {"seconds": time.perf_counter() - started, "statements": statements[0]}


variants = {"bulk": bulk, "per_view": per_view}
for run in variants.values():
    for _ in range(ARGS["warmup"]):
        run()
results = {name: {} for name in variants}
for _ in range(ARGS["repetitions"]):
    for name, run in variants.items():
        for key, value in run().items():
            results[name].setdefault(key, []).append(value)
print(json.dumps(results))
