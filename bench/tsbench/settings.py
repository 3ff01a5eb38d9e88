"""How big and how long each part runs: the full benchmark and the QUICK pass (tiny data, short runs)."""

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
    load_steps: tuple[int, ...]        # part 7: locust users per step
    load_step_seconds: int
    part_budget_seconds: int           # a part stops starting new work after this long


FULL = Settings(quick=False, search_sizes=(10_000, 100_000, 1_000_000), base_jobs=100_000, repetitions=7, warmup=1,
                http_seconds=10, http_connections=16, dashboard_steps=(1_000, 10_000, 100_000), views=10_000,
                tuning_rounds=5, pgbench_scale=40, pgbench_seconds=30, noop_redeploys=3, single_topology=True,
                load_steps=(5, 10, 20, 40, 80), load_step_seconds=30, part_budget_seconds=600)
QUICK = Settings(quick=True, search_sizes=(2_000, 10_000), base_jobs=2_000, repetitions=3, warmup=1,
                 http_seconds=2, http_connections=8, dashboard_steps=(1_000, 5_000), views=1_000,
                 tuning_rounds=2, pgbench_scale=10, pgbench_seconds=5, noop_redeploys=1, single_topology=False,
                 load_steps=(5, 20), load_step_seconds=8, part_budget_seconds=120)
