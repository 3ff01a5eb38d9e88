"""The benchmark harness's pure parts: statistics, interleaving, results files and the generated report.

The full benchmark needs a lab and minutes to hours; these run in well under a second so that the harness
cannot rot silently. The report is generated from a small results document made here, with real plots.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from tsbench import machine, report, results, stats  # noqa: E402


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert stats.percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert stats.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
    assert stats.percentile([7.0], 0.95) == 7.0


def test_percentile_of_no_samples_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="measure at least one value"):
        stats.percentile([], 0.5)


def test_summary_reports_median_p95_and_spread() -> None:
    summary = stats.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary["p50"], summary["q1"], summary["q3"], summary["iqr"]) == (3.0, 2.0, 4.0, 2.0)
    assert (summary["min"], summary["max"], summary["n"]) == (1.0, 5.0, 5)


def test_reduction_is_the_share_of_time_saved_and_speedup_its_ratio() -> None:
    assert stats.reduction(30.0, 100.0) == pytest.approx(70.0)
    assert stats.reduction(150.0, 100.0) == pytest.approx(-50.0)
    assert stats.speedup(25.0, 100.0) == 4.0
    assert stats.reduction(1.0, 0.0) is None


def test_interleave_warms_up_then_alternates_the_variants() -> None:
    calls: list[str] = []
    outcome = stats.interleave({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
                               repetitions=2, warmup=1)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert outcome == {"a": [1, 1], "b": [2, 2]}


def test_machine_description_names_cpu_cores_memory_and_load() -> None:
    described = machine.describe()
    assert described["cores"] >= 1 and described["memory_bytes"] > 0
    assert described["cpu_model"] and len(described["load_average"]) == 3


def _summary(*values: float) -> dict[str, float]:
    return stats.summarize(list(values))


def small_run() -> dict:
    """A results document as the harness writes it, with the views and deploy parts filled in."""
    run = results.new_run(True, {**machine.describe(), "load_average": [3.0, 2.0, 1.0]})
    run["topology"] = {"name": "split", "hosts": ["app1", "app2", "cache1", "db1", "lb1"], "host_memory": "2GB",
                       "host_cpus": 2, "app_workers_per_host": 5, "pool_size": 5, "max_overflow": 5, "note": "shared"}
    run["parts"]["views"] = {"status": "ok", "seconds": 3.0, "load_average_before": [3, 2, 1],
                             "load_average_after": [3, 2, 1], "data": {
        "views": 100, "jobs": 10, "speedup_p50": 20.0, "db_time_speedup_p50": 150.0,
        "bulk": {"seconds": _summary(0.1, 0.2), "record_seconds": _summary(0.05, 0.1),
                 "flush_seconds": _summary(0.01, 0.02), "statements": 1},
        "per_view": {"seconds": _summary(2.0, 3.0), "statements": 100}}}
    run["parts"]["deploy"] = {"status": "failed", "seconds": 1.0, "load_average_before": [3, 2, 1],
                              "load_average_after": [3, 2, 1], "error": "RemoteError: tsdeploy deploy failed"}
    return run


def test_results_are_written_under_their_utc_timestamp_and_read_back(tmp_path: Path) -> None:
    run = small_run()
    path = results.write(run, tmp_path)
    assert path.name == results.utc_stamp(__import__("datetime").datetime.fromisoformat(run["started_at"])) + ".json"
    assert results.load(path) == json.loads(json.dumps(run))
    assert results.latest(tmp_path) == path


def test_a_results_file_of_another_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": 0}))
    with pytest.raises(ValueError, match="re-run `make bench`"):
        results.load(path)


def test_report_states_machine_quick_noise_claims_and_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "REPO", tmp_path)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    markdown = report.generate(small_run(), tmp_path / "bench" / "results" / "x.json", tmp_path / "BENCHMARKS.md")
    text = markdown.read_text()
    assert "QUICK run" in text and "Noisy machine" in text
    assert "2 CPUs" in text and "GiB RAM" in text
    assert "1 vs 100 statements; 20.0x total, 150x database time" in text
    assert "**Not measured: the part failed.** `RemoteError: tsdeploy deploy failed`" in text


def test_report_draws_a_png_for_a_part_with_a_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "REPO", tmp_path)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    run = small_run()
    run["parts"]["dashboard"] = {"status": "ok", "seconds": 1.0, "load_average_before": [1, 1, 1],
                                 "load_average_after": [1, 1, 1], "data": {
        "company_jobs": 1000, "constant_statement_count": True,
        "steps": [{"applications": n, "statements_per_request": 7.0, "p50_ms": _summary(n / 100, n / 90),
                   "p95_ms": _summary(n / 50, n / 40), "errors": 0} for n in (1000, 10000)]}}
    text = report.generate(run, tmp_path / "bench" / "results" / "x.json", tmp_path / "BENCHMARKS.md").read_text()
    plots = list((tmp_path / "bench" / "results").glob("*-dashboard.png"))
    assert len(plots) == 1 and plots[0].read_bytes().startswith(b"\x89PNG")
    assert f"]({plots[0].relative_to(tmp_path)})" in text
    assert "constant 7.0 statements/request" in text
