"""What a run uses: sizes and durations (the full benchmark and the QUICK pass), the lab hosts it addresses
and the inventory variables it adds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Sizes, repetitions and durations; every part reads only these."""

    quick: bool
    search_sizes: tuple[int, ...]      # jobs seeded for part 1 (ascending; part 5 runs at the last one)
    base_jobs: int                     # jobs for parts 2, 3, 4 and 7 (the deploy seeds this many)
    repetitions: int                   # interleaved rounds per comparison
    warmup: int                        # discarded runs per variant before the rounds
    http_seconds: float                # one wrk measurement
    http_connections: int              # wrk connections (2 threads)
    dashboard_steps: tuple[int, ...]   # applications of the bench employer's company
    views: int                         # part 4
    tuning_rounds: int                 # part 5: interleaved rounds over the three configurations
    pgbench_scale: int                 # part 5 (c): scale 10 is ~150 MB, above stock shared_buffers (128 MB)
    pgbench_seconds: int
    noop_redeploys: int                # part 6
    single_topology: bool              # part 6: also time a cold deploy of the single-host topology
    backup_sizes: tuple[int, ...]      # part 8: jobs seeded for backup and restore (ascending; ends at the largest)
    load_steps: tuple[int, ...]        # part 7: wrk connections per step (no think time), climbed until p95 reaches
                                       # its limit or a request fails
    load_step_seconds: int
    load_variants: tuple[dict, ...]    # part 7: Gunicorn configurations climbed one after the other
    load_budget_seconds: int           # part 7: its own budget (per configuration: a deploy and three climbs)
    part_budget_seconds: int           # a part stops starting new work after this long


# The lab hosts the harness runs its commands on, by role: SQL on "db", app-side programs on "app", Redis on
# "cache", HTTP to "lb", pgBackRest's units and repository on "backup". The run records them, so the report names
# the hosts a results file was measured on.
BENCH_HOSTS = {"app": "app1", "backup": "backup1", "cache": "cache1", "db": "db1", "lb": "lb1"}

# The lab's nginx limits each client address to a few API requests/s (and logins and registrations to a few a
# minute); the load generator is one address, so the bench inventory lifts both limits (the benchmark measures
# the stack, not the limiter; the harness registers and logs in many users).
BENCH_VARS = {"nginx_api_rate": "100000r/s", "nginx_api_burst": 100000,
              "nginx_auth_rate": "100000r/s", "nginx_auth_burst": 100000}

# Part 7's Gunicorn configurations, each deployed (extra inventory vars on the bench lab) and climbed in turn;
# the report states each one's effective settings as deployed. Edit freely: a variant is a name and the vars it
# adds. Threads must stay <= app_db_pool_size + app_db_max_overflow (5 + 5 by default: each thread may hold a
# pooled connection), or the deploy refuses the inventory.
LOAD_VARIANTS: tuple[dict, ...] = (
    {"name": "deployed defaults", "vars": {}},
    {"name": "sync workers, no recycling", "vars": {"app_threads": 1, "app_max_requests": 0}},
    # The earlier defaults: the baseline the current ones replaced.
    {"name": "sync workers, recycled every 1000 requests", "vars": {"app_threads": 1, "app_max_requests": 1000}},
    {"name": "gthread 8 threads", "vars": {"app_threads": 8}},
    # The earlier default: Gunicorn's access line per request in the journal, beside nginx's.
    {"name": "Gunicorn access log on", "vars": {"app_access_log": True}},
)

# FULL is sized so that each part's planned work fits its 10 minute budget on a quiet 2-core machine (measured
# in the first full run: 7 cache rounds of 10 s measurements took 16 min, 5 tuning rounds with 30 s pgbench 20 min).
# The budget is still enforced: a part does not start a round it cannot finish in time, and says so.
FULL = Settings(quick=False, search_sizes=(10_000, 100_000, 1_000_000), base_jobs=100_000, repetitions=5, warmup=1,
                http_seconds=6, http_connections=16, dashboard_steps=(1_000, 10_000, 100_000), views=10_000,
                tuning_rounds=3, pgbench_scale=40, pgbench_seconds=12, noop_redeploys=3, single_topology=True,
                backup_sizes=(100_000, 1_000_000),
                load_steps=(4, 8, 16, 32, 64, 128, 256), load_step_seconds=10,
                load_variants=LOAD_VARIANTS, load_budget_seconds=1800, part_budget_seconds=600)
QUICK = Settings(quick=True, search_sizes=(2_000, 10_000), base_jobs=2_000, repetitions=3, warmup=1,
                 http_seconds=2, http_connections=8, dashboard_steps=(1_000, 5_000), views=1_000,
                 tuning_rounds=2, pgbench_scale=10, pgbench_seconds=5, noop_redeploys=1, single_topology=False,
                 backup_sizes=(2_000,),
                 load_steps=(4, 16, 64), load_step_seconds=3,
                 # The deployed defaults (no re-deploy) and the sync workers: one re-deploy, not three.
                 load_variants=LOAD_VARIANTS[:2], load_budget_seconds=360, part_budget_seconds=120)
