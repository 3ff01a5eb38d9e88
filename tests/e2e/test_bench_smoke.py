"""End to end: one tiny real benchmark part (view counts) against the session's deployed split lab.

Keeps the harness's lab-facing code (SSH, `systemd-run` as the app user, the remote programs) from rotting;
the full benchmark is `make bench`, not a test.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from tsbench import results  # noqa: E402
from tsbench.context import Bench  # noqa: E402
from tsbench.hosts import BenchLab  # noqa: E402
from tsbench.parts import views  # noqa: E402
from tsbench.settings import QUICK  # noqa: E402

if TYPE_CHECKING:
    from conftest import Deployment

pytestmark = pytest.mark.e2e


def test_bench_view_counts_part_measures_a_constant_bulk_flush_against_one_statement_per_view(
        deployed_split: Deployment) -> None:
    lab = BenchLab(deployed_split.lab.name, deployed_split.lab.inventory_dir)
    settings = dataclasses.replace(QUICK, views=200, repetitions=1, warmup=0)
    data = views.run(Bench(lab, settings, results.new_run(True, {})))
    # The flush is two statements whatever the number of views: the advisory lock that keeps two hosts from
    # flushing the same views, and the one bulk UPDATE.
    assert data["bulk"]["statements"] == 2
    assert data["per_view"]["statements"] == 200
    # Timings are the bench's report, not a pass/fail: one repetition on a shared 2-core machine can put either
    # side ahead. The test checks that both sides were measured.
    assert data["bulk"]["flush_seconds"]["p50"] > 0
    assert data["per_view"]["seconds"]["p50"] > 0
