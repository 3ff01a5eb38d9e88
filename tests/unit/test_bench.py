"""The benchmark harness's pure parts: statistics, interleaving, results files and the generated report.

The full benchmark needs a lab and minutes to hours; these run in seconds so that the harness cannot rot
silently. The report is generated from a small results document made here, with real plots, and from the
committed results files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from tsbench import machine, report, results, stats  # noqa: E402
from tsbench.parts import PARTS, backup, cache, dashboard, load, load_legacy, search, tuning  # noqa: E402


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


def test_a_quiet_machine_is_not_called_noisy_because_of_the_bench_s_own_load(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The end-of-run load average is the bench's own wrk/locust/lab work: only idle samples judge the machine.
    monkeypatch.setattr(report, "REPO", tmp_path)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    run = small_run()
    run["machine"].update(load_average=[0.2, 0.5, 1.0], load_average_end=[6.0, 5.0, 4.0], idle_busy_pct=3.0)
    text = report.generate(run, tmp_path / "bench" / "results" / "x.json", tmp_path / "BENCHMARKS.md").read_text()
    assert "Noisy machine" not in text and "Quiet machine: at most 3.0 % CPU busy" in text

    run["parts"]["views"]["idle_busy_pct_before"] = 60.0
    text = report.generate(run, tmp_path / "bench" / "results" / "x.json", tmp_path / "BENCHMARKS.md").read_text()
    assert "Noisy machine:** the machine was 60 % busy before part views while the bench generated no load" in text


def _cache_row(endpoint: str, cached_ms: float, uncached_ms: float, uncached_fraction: float) -> dict:
    return {"endpoint": endpoint, "p95_reduction_pct": stats.reduction(cached_ms * 2, uncached_ms * 2),
            "throughput_ratio": 2.0, "cached": {"p50_ms": _summary(cached_ms)},
            "uncached": {"p50_ms": _summary(uncached_ms), "fraction_of_ceiling": uncached_fraction}}


def _context() -> report.ReportContext:
    return report.ReportContext(small_run())


def test_cache_verdict_judges_p50_and_p95_and_says_why_an_endpoint_falls_short() -> None:
    data = {"rows": [_cache_row("ceiling: /health", 5.0, 4.0, 0.9), _cache_row("search", 10.0, 40.0, 0.09),
                     _cache_row("categories", 7.5, 10.0, 0.43), _cache_row("dashboard", 30.0, 40.0, 0.1)]}
    text = cache.verdict(data, _context())
    assert text.startswith("p50 saved: partly: 1 of 3 reach 50 % (25 to 75 % vs 50-80 % claimed); p95 saved: partly")
    # categories is bound by the stack (its uncached rate is near the ceiling's); dashboard is not, and the
    # report says it cannot explain that from this data rather than inventing a reason.
    assert "categories (25 %; uncached already 0.43 of the ceiling): the uncached answer is a cheap query" in text
    assert "without being bound by the stack: dashboard (25 %, cached p50 30.0 ms): not explained" in text
    assert cache.verdict({"rows": [_cache_row("search", 10.0, 40.0, 0.1)]}, _context()).startswith("p50 saved: meets")


def test_search_verdict_judges_each_size_against_both_claims() -> None:
    def size(jobs: int, sql: list[float], http: list[float]) -> dict:
        return {"jobs": jobs, "sql": {"rows": [{"reduction_p50_pct": v, "without_ms": _summary(jobs / 500)}
                                               for v in sql]},
                "http": {"rows": [{"reduction_p50_pct": v} for v in http]}}
    text = search.verdict({"sizes": [size(10_000, [44.0, 56.0], [21.0, 45.0]),
                                     size(1_000_000, [74.0, 87.0], [76.0, 93.0])]}, _context())
    assert "10,000 jobs: queries falls short (44 to 56 % vs 70-90 % claimed); HTTP partly: 1 of 2 reach 40 %" in text
    assert "1,000,000 jobs: queries meets (74 to 87 % vs 70-90 % claimed); HTTP meets" in text
    assert "reads all 10,000 jobs in 20 to 20 ms" in text


def test_dashboard_has_no_before_app_so_its_verdict_is_not_comparable() -> None:
    assert dashboard.verdict({"constant_statement_count": True}, _context()).startswith("not comparable")


def _tps(*values: float) -> dict[str, float]:
    return stats.summarize(list(values))


def test_tuning_differences_count_only_what_lies_outside_the_noise() -> None:
    same = {"q": {"ms": _tps(100, 110, 120)}}
    rows = [{"config": "stock", "queries": same, "select_only_tps": _tps(100, 101, 102),
             "tpcb_tps": _tps(100, 101, 102), "connection_errors": 15},
            {"config": "ours", "queries": {"q": {"ms": _tps(105, 112, 118)}}, "select_only_tps": _tps(99, 100, 103),
             "tpcb_tps": _tps(120, 121, 122), "connection_errors": 0}]
    lines = tuning.differences({"rows": rows})
    assert "ours, q: no measurable difference from stock" in lines[0]
    assert "no measurable difference" in lines[1] and "pgbench select-only" in lines[1]
    assert lines[2] == "ours, pgbench TPC-B: 121 vs 101 tps, 1.20x stock"
    assert lines[3] == "ours, connection demand: 0 errors vs stock's 15"
    # One round each is no basis for "measurable": the report says so instead of comparing single samples.
    single = [{**row, "tpcb_tps": _tps(row["tpcb_tps"]["p50"])} for row in rows]
    assert "ours, pgbench TPC-B: 121 vs 101 tps, too few rounds to judge (n = 1)" in tuning.differences(
        {"rows": single})


def _load_step(**overrides: float) -> dict:
    step = {"users": 80, "rps": 60.0, "p95_ms": 250.0, "failures": 0, "failure_kinds": {}, "machine_cpu_pct": 40.0,
            "host_cpu_pct": {"app1": 50.0, "app2": 45.0, "db1": 10.0}, "locust_cpu_pct": 30.0,
            "busy_workers": 2.0, "workers": 10}
    return {**step, **overrides}


def test_legacy_load_saturation_still_judges_locust_runs_from_their_steps() -> None:
    cpu = load_legacy.saturation(_load_step(machine_cpu_pct=97.0), cores=2)
    assert cpu["resource"] == "the machine's CPU" and "app1 50 %" in cpu["evidence"]
    assert load_legacy.saturation(_load_step(locust_cpu_pct=99.0), 2)["resource"].startswith("the load generator")
    assert load_legacy.saturation(_load_step(busy_workers=9.5), 2)["resource"].startswith("the Gunicorn request slots")
    assert load_legacy.saturation(_load_step(), 2)["resource"] == "none of CPU, load generator or workers"
    assert not load_legacy.within_limits(_load_step()) and load_legacy.within_limits(_load_step(p95_ms=150.0))


def _wrk_step(**overrides: object) -> dict:
    step = {"connections": 32, "rps": 900.0, "p50_ms": 20.0, "p95_ms": 140.0, "mean_ms": 30.0, "failures": 0,
            "failure_kinds": {}, "machine_cpu_pct": 60.0, "generator_cpu_pct": 12.0, "generator_threads": 32,
            "host_cpu_pct": {"app1": 40.0, "app2": 38.0, "db1": 15.0, "cache1": 8.0, "lb1": 20.0},
            "busy_workers": 5.0, "workers": 10, "db_active_backends": {"mean": 0.4, "max": 3.0},
            "endpoints": {"/api/jobs?q": {"requests": 9, "failures": 0, "p95_ms": 150.0},
                          "/api/jobs/[id]": {"requests": 6, "failures": 0, "p95_ms": 30.0}}}
    return {**step, **overrides}


def test_load_saturation_rules_are_tried_in_order_and_the_first_that_holds_wins() -> None:
    def resource(**overrides: object) -> str:
        return load.saturation(_wrk_step(**overrides), cores=2)["resource"]
    # The generator at the limit of the cores its threads can use is named even when the machine is busy too.
    assert resource(generator_cpu_pct=185.0, machine_cpu_pct=99.0) == "the load generator (wrk)"
    assert resource(generator_cpu_pct=95.0, generator_threads=1) == "the load generator (wrk)"
    # redis-server is single-threaded: 90 % of one core is its limit, whatever the machine has left.
    assert resource(host_cpu_pct={"cache1": 93.0, "app1": 50.0}, machine_cpu_pct=90.0) == "Redis (single-threaded)"
    cpu = load.saturation(_wrk_step(machine_cpu_pct=96.0, busy_workers=9.9), cores=2)
    assert cpu["resource"] == "the machine's CPU" and "app1 40 %, app2 38 %, lb1 20 %, db1 15 %" in cpu["evidence"]
    # 96 % of 2 cores = 192 % of one; the hosts used 121 %, wrk 12 %: the rest ran outside the bench.
    assert "outside the measured hosts and wrk: 59 % of a core" in cpu["evidence"]
    assert resource(db_active_backends={"mean": 2.5, "max": 6.0}) == "PostgreSQL"
    assert resource(host_cpu_pct={"db1": 175.0}) == "PostgreSQL"
    assert resource(busy_workers=9.0).startswith("the Gunicorn request slots")
    errors = load.saturation(_wrk_step(failures=3, failure_kinds={"/api/jobs?q 502": 3}), 2)
    assert errors["resource"].startswith("errors") and "/api/jobs?q 502 x3" in errors["evidence"]
    assert resource().startswith("none of")
    # A bare-ceiling step has no db or cache host and no PostgreSQL sample: the rules still apply.
    assert resource(host_cpu_pct={"bare gunicorn": 150.0}, db_active_backends=None, machine_cpu_pct=97.0) \
        == "the machine's CPU"


def test_load_climb_keeps_the_best_step_within_limits_and_judges_the_step_that_broke_them() -> None:
    steps = [_wrk_step(connections=4, rps=500.0, p95_ms=20.0), _wrk_step(connections=8, rps=800.0, p95_ms=60.0),
             _wrk_step(connections=16, rps=950.0, p95_ms=99.9), _wrk_step(connections=32, rps=990.0, p95_ms=180.0,
                                                                           machine_cpu_pct=97.0)]
    assert load.P95_LIMIT_MS == 100.0
    assert load.best_step(steps)["connections"] == 16
    climb = load.summarize_climb(steps, 2, "db1", "cache1")
    assert climb["limit_reached_at"] == 32 and climb["saturation"]["resource"] == "the machine's CPU"
    # An error fails a step however fast it was.
    assert load.best_step([_wrk_step(p95_ms=10.0, failures=1)]) is None
    # Never over the limit: judged at the heaviest step, and no limit reached.
    calm = load.summarize_climb(steps[:2], 2, "db1", "cache1")
    assert calm["limit_reached_at"] is None and calm["best"]["connections"] == 8
    assert load.summarize_climb([], 2, "db1", "cache1")["saturation"] is None


def test_load_mix_keeps_the_users_weights_and_its_tokens_stay_out_of_the_command_line() -> None:
    mix = load.request_mix("SEEKER", "EMPLOYER", [11, 12, 13])
    counts: dict[str, int] = {}
    for r in mix:
        counts[r["name"]] = counts.get(r["name"], 0) + 1
    assert counts == {"/api/jobs?q": 60, "/api/jobs/featured": 20, "/api/jobs/[id]": 40,
                      "/api/jobs/[id]/applications": 10, "/api/employer/dashboard": 13}
    searches = [r["path"] for r in mix if r["name"] == "/api/jobs?q"]
    assert sum("&location=" in p for p in searches) == 30
    assert all(r["headers"]["Authorization"] == "Bearer EMPLOYER" for r in mix if "employer" in r["name"])
    applies = [r for r in mix if r["method"] == "POST"]
    assert all(r["ok"] == [201, 409] and r["path"].split("/")[3] in {"11", "12", "13"} for r in applies)
    assert mix == load.request_mix("SEEKER", "EMPLOYER", [11, 12, 13])  # deterministic
    lua = load.lua_requests(mix[:2])
    assert lua.startswith("REQUESTS = {\n") and '["Authorization"] = "Bearer SEEKER"' in lua and "[200] = true" in lua
    with pytest.raises(ValueError, match="job ids"):
        load.request_mix("S", "E", [])


def test_wrk_output_becomes_a_step_with_failures_counted_per_endpoint_and_socket_errors_added() -> None:
    line = json.dumps({"requests": 2000, "duration_us": 2_000_000, "connect_errors": 0, "read_errors": 1,
                       "write_errors": 0, "timeouts": 2, "recorded": 1997, "mean_us": 4000, "p50_us": 3000,
                       "p95_us": 9000, "p99_us": 15000, "failure_kinds": {"/api/jobs?q 502": 4},
                       "endpoints": {"/api/jobs?q": {"requests": 1000, "failures": 4, "p50_us": 3000, "p95_us": 9500,
                                                     "p99_us": 16000}}})
    parsed = load.parse_wrk("Running 2s test\n" + line + "\n", 0.5)
    assert parsed["rps"] == 1000.0 and parsed["p95_ms"] == 9.0 and parsed["failures"] == 7
    assert parsed["failure_kinds"] == {"/api/jobs?q 502": 4, "read errors": 1, "timeouts": 2}
    assert parsed["endpoints"]["/api/jobs?q"]["p95_ms"] == 9.5 and parsed["generator_cpu_seconds"] == 0.5


def test_the_bare_ceiling_copies_the_configuration_s_gunicorn_settings() -> None:
    from tsbench import ceiling

    settings = {"workers": 5, "worker_class": "gthread", "threads": 4, "keepalive": 5, "max_requests": 0,
                "max_requests_jitter": 100, "timeout": 30}
    conf = ceiling.config(settings, 10, 18000)
    assert 'bind = ["127.0.0.1:18000"]' in conf and "workers = 10" in conf and "threads = 4" in conf
    assert "worker_class = 'gthread'" in conf and "max_requests = 0" in conf and "keepalive = 5" in conf
    assert "threads" not in ceiling.config({**settings, "worker_class": "sync", "threads": 1}, 10, 18000)


def test_every_load_variant_fits_the_default_pool() -> None:
    # Each thread may hold one pooled connection: the deploy refuses threads > pool_size + max_overflow.
    from tsbench.settings import FULL, LOAD_VARIANTS, QUICK

    assert FULL.load_variants == LOAD_VARIANTS and all(v in LOAD_VARIANTS for v in QUICK.load_variants)
    for variant in LOAD_VARIANTS:
        v = variant["vars"]
        assert v.get("app_threads", 1) <= v.get("app_db_pool_size", 5) + v.get("app_db_max_overflow", 5), variant


def _load_data() -> dict:
    def climb(rps: float, connections: int, resource: str = "the machine's CPU") -> dict:
        best = _wrk_step(connections=connections, rps=rps, p95_ms=70.0)
        broke = _wrk_step(connections=connections * 2, rps=rps * 1.05, p95_ms=160.0, machine_cpu_pct=97.0)
        return {"steps": [best, broke], "best": best, "limit_reached_at": connections * 2, "cut_by_budget": False,
                "saturation": {"resource": resource, "evidence": "97 % of 2 cores busy"}}
    gunicorn = {"workers": 5, "worker_class": "sync", "threads": 1, "keepalive": 5, "max_requests": 0,
                "max_requests_jitter": 100, "timeout": 30}
    variant = {"name": "sync workers, no recycling", "vars": {"app_threads": 1, "app_max_requests": 0},
               "gunicorn": gunicorn, "app_hosts": 2, "slots": 10, "bare_workers": 10, "deploy_seconds": 40.0,
               "deploy_summary": "3 changed", "climbs": {"mix": climb(600.0, 16), "health": climb(1500.0, 32),
                                                          "bare": climb(2400.0, 16)}}
    return {"model": "closed", "variants": [variant], "p95_limit_ms": 100.0, "seconds_per_step": 10,
            "connections_steps": [4, 8, 16, 32], "cached_endpoints": list(load.CACHED_ENDPOINTS),
            "rounds": {"planned": 12, "done": 6, "unit": "steps", "budget_seconds": 1800, "cut_by_budget": False}}


def test_load_report_gives_each_configuration_its_ratios_to_both_ceilings_and_what_saturated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_plots(monkeypatch, tmp_path)
    context = report.ReportContext({"machine": {"cores": 2}, "topology": {}})
    data = _load_data()
    text = load.section(data, context)
    assert ("| sync workers, no recycling | 600 req/s at 16 conn. | 70 | 25 % | 40 % | 1,500 req/s at 32 conn. | "
            "2,400 req/s at 16 conn. | the machine's CPU |") in text
    assert "highest throughput with p95 < 100 ms and no errors" in text
    assert "what saturated first, at 32 connections, the first step over the limit: **the machine's CPU**" in text
    assert "| /api/jobs?q (cached) | 150 | 150 | 0 |" in text and "wrk does not verify certificates" in text
    headline = load.headline(data, context)
    assert headline == ("sync workers, no recycling: 600 req/s at 16 connections (25 % of bare Gunicorn, 40 % of "
                        "/health via nginx)")
    assert load.verdict(data, context) == "no figure claimed; saturated first: sync workers, no recycling: the machine's CPU"
    assert load.effective(data["variants"][0]["gunicorn"], 2) == (
        "sync, 5 workers x 1 thread(s) per app host x 2 hosts, keep-alive 5 s, no recycling, timeout 30 s")
    assert load.ratio(None, {"rps": 1.0}) is None
    assert load.title(data) == "Load: capacity under a realistic request mix"
    assert load.title({"steps": []}) == "Load: realistic users"  # a locust run's results keep their title
def test_a_part_starts_a_round_only_if_it_still_fits_the_budget() -> None:
    import dataclasses

    from tsbench.context import Bench
    from tsbench.settings import QUICK

    bench = Bench(lab=None, settings=dataclasses.replace(QUICK, part_budget_seconds=100), run={})  # type: ignore[arg-type]
    bench.start_part()
    assert bench.fits(99.0) and not bench.fits(101.0)
    assert bench.budget_note(5, 3) == {"planned": 5, "done": 3, "unit": "rounds", "budget_seconds": 100,
                                       "cut_by_budget": True}
    assert bench.budget_note(5, 3, unit="steps", cut_by_budget=False)["cut_by_budget"] is False


def test_cpu_accounting_counts_the_processes_of_one_pid_namespace() -> None:
    # A lab host is a PID namespace; a busy loop in a namespace of its own (unshare, as root like the lab)
    # stands in for one, so other processes on the machine cannot disturb the count.
    import subprocess
    import time

    spinner = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c",
                                "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        deadline = time.monotonic() + 5
        children: list[str] = []
        while not children and time.monotonic() < deadline:
            children = Path(f"/proc/{spinner.pid}/task/{spinner.pid}/children").read_text().split()
            time.sleep(0.05)
        host = {"host": int(children[0])}
        before = machine.cpu_seconds_by_namespace(host)["host"]
        time.sleep(1.0)
        spent = machine.cpu_seconds_by_namespace(host)["host"] - before
        # One busy core for about a second; the lower bound leaves room for a loaded CI machine.
        assert 0.2 <= spent <= 1.3
        assert machine.cpu_seconds_by_namespace({"gone": 999_999_999}) == {"gone": 0.0}
        # Per process, the spinner is the one process of its namespace, with its own CPU time.
        processes = list(machine.process_cpu_seconds(host).values())
        assert len(processes) == 1 and processes[0][0] == "host" and processes[0][1].startswith("python")
        assert processes[0][2] >= 0.2
    finally:
        spinner.kill()
        spinner.wait()
    assert 0.0 <= machine.busy_percent(0.2) <= 100.0


def test_tuning_explanations_say_why_the_configurations_differ_only_where_they_do() -> None:
    def row(config: str, work_mem: str, buffers: str, limit: str, temp: int, errors: int) -> dict:
        return {"config": config, "settings": {"work_mem": work_mem, "shared_buffers": buffers, "max_connections": limit},
                "queries": {"dashboard aggregates": {"temp_written_blocks": temp}}, "connection_errors": errors,
                "demand": [{"demand": 100}]}
    data = {"pgbench": {"size": "606 MB"}, "rows": [row("stock", "4MB", "128MB", "100", 1876, 9),
                                                     row("ours", "4443kB", "512MB", "110", 1872, 0)]}
    text = tuning.explanations(data)
    assert "dashboard aggregates writes 1,872-1,876 temporary blocks (15 MB) in every configuration" in text
    assert "larger than every shared_buffers here (stock 128 MB, ours 512 MB)" in text
    assert "connection errors were stock 9, ours 0" in text
    # A spill that one configuration removes is not "in every configuration".
    data["rows"][1]["queries"]["dashboard aggregates"]["temp_written_blocks"] = 0
    assert "in every configuration" not in tuning.explanations(data)


def test_load_report_refutes_the_slots_reading_when_more_slots_do_not_move_the_limit() -> None:
    def climb(name: str, slots: int, p95s: dict[str, float]) -> dict:
        broke = _load_step(users=160, endpoints={n: {"requests": 10, "failures": 0, "p95_ms": v} for n, v in p95s.items()})
        return {"name": name, "slots": slots, "limit_reached_at_users": 160, "steps": [_load_step(p95_ms=50.0), broke]}
    cached = {"/api/employer/dashboard": 3900.0, "/api/jobs/featured": 1800.0, "/api/jobs?q": 1900.0,
              "/api/jobs/[id]": 23.0}
    climbs = [climb("sync", 10, cached), climb("gthread", 40, cached)]
    assert "With 40 request slots instead of 10, the limit was reached at the same number of users (160)" in \
        load_legacy.slots_finding(climbs)
    text = load_legacy.endpoints_at_limit(climbs, 200.0, set(load_legacy.CACHED_ENDPOINTS), "db1")
    assert "Over 200 ms at p95: /api/employer/dashboard, /api/jobs/featured, /api/jobs?q; under it: /api/jobs/[id]." in text
    assert "Exactly the endpoints served through the Redis cache are slow" in text
    # More slots that did move the limit are not called irrelevant.
    climbs[1]["limit_reached_at_users"] = 320
    assert load_legacy.slots_finding(climbs) == ""



def _step_usage(machine_cpu: float = 40.0, hosts: dict | None = None, processes: list | None = None,
                disk_util: float = 20.0, seconds: float = 30.0) -> dict:
    return {"seconds": seconds, "machine_cpu_pct": machine_cpu, "machine_iowait_pct": 3.0,
            "host_cpu_pct": hosts or {"backup1": 60.0, "db1": 45.0, "app1": 1.0},
            "disk": {"name": "vda", "util_pct": disk_util, "read_mb_s": 5.0, "write_mb_s": 80.0},
            "processes": processes if processes is not None else [
                {"host": "db1", "command": "pgbackrest", "cpu_seconds": 12.0, "observed_seconds": 28.0, "cpu_pct": 43.0}]}


def _backup_size(jobs: int, scale: float = 1.0, drill_passed: bool = True) -> dict:
    one_core = [{"host": "db1", "command": "pg_dump", "cpu_seconds": 19.0, "observed_seconds": 19.5, "cpu_pct": 97.0}]
    return {"jobs": jobs, "seeded": {"seconds": 20.0 * scale}, "database_bytes": int(250e6 * scale),
            "cluster_bytes": int(280e6 * scale),
            "settle": {"vacuum_seconds": 3.0, "archive_wait_seconds": 4.0, "archiving": True},
            "pgbackrest": {"seconds": 30.0 * scale, "label": "20261201-013012F", "type": "full",
                           "pgbackrest_seconds": 29, "size_bytes": int(280e6 * scale),
                           "repository_bytes": int(60e6 * scale), "usage": _step_usage()},
            "pg_dump": {"seconds": 20.0 * scale, "file_bytes": int(50e6 * scale),
                        "usage": _step_usage(processes=one_core, seconds=20.0)},
            "drill": {"seconds": 70.0 * scale, "restore_seconds": 15.0 * scale, "drill_seconds": 69.0 * scale,
                      "passed": drill_passed, "backup_label": "20261201-013012F", "label_matches": True,
                      "error": None if drill_passed else "pg_amcheck found corruption", "unit_rc": 0,
                      "usage": _step_usage(machine_cpu=93.0)},
            "pg_restore": {"seconds": 60.0 * scale, "jobs": 2, "usage": _step_usage(machine_cpu=30.0, processes=[])}}


def _backup_data() -> dict:
    return {"sizes": [_backup_size(100_000), _backup_size(1_000_000, scale=10.0),
                      {"jobs": 5_000_000, "skipped": "part budget of 600s spent"}],
            "hosts": {"db": "db1", "backup": "backup1"}, "stanza": "talentsphere", "database": "talentsphere",
            "compress_type": "zst", "process_max": 2, "backup_unit": "pgbackrest-backup@full.service",
            "drill_unit": "pgbackrest-drill.service", "pg_restore_jobs": 2, "sample_seconds": 0.5,
            "rounds": {"planned": 3, "done": 2, "unit": "sizes", "budget_seconds": 600, "cut_by_budget": True}}


def test_backup_usage_turns_samples_into_cpu_iowait_host_process_and_disk_figures() -> None:
    samples = [{"t": 10.0, "cpu": (1000, 100, 5000), "disks": {"vda": (50_000, 0, 0), "loop0": (0, 0, 0)},
                "processes": {"1:5": ("db1", "pg_dump", 1.0), "2:7": ("backup1", "pgbackrest", 0.5),
                              "3:9": ("db1", "psql", 0.1)}},
               {"t": 12.0, "cpu": (1200, 120, 5200), "disks": {"vda": (51_000, 1000, 2000), "loop0": (0, 0, 0)},
                "processes": {"1:5": ("db1", "pg_dump", 2.9), "2:7": ("backup1", "pgbackrest", 1.0)}},
               {"t": 14.0, "cpu": (1400, 140, 5400), "disks": {"vda": (53_600, 2000, 400_000)},
                "processes": {"1:5": ("db1", "pg_dump", 4.9), "4:11": ("db1", "postgres", 0.2)}}]
    # loop0 did no I/O: not a candidate for the busiest disk.
    figures = backup.usage(samples, {"db1": 100.0, "backup1": 50.0}, {"db1": 105.0, "backup1": 50.5})
    assert figures["seconds"] == 4.0
    assert (figures["machine_cpu_pct"], figures["machine_iowait_pct"]) == (100.0, 10.0)
    assert figures["host_cpu_pct"] == {"backup1": 12.5, "db1": 125.0}
    # vda: 3.6 s of I/O in 4 s; 400,000 sectors of 512 bytes written = 204.8 MB in 4 s.
    assert figures["disk"] == {"name": "vda", "util_pct": 90.0, "read_mb_s": 0.3, "write_mb_s": 51.2}
    # Processes seen once (psql, the late postgres) tell nothing; pg_dump used 3.9 s of CPU in 4 s.
    assert figures["processes"] == [
        {"host": "db1", "command": "pg_dump", "cpu_seconds": 3.9, "observed_seconds": 4.0, "cpu_pct": 97.5},
        {"host": "backup1", "command": "pgbackrest", "cpu_seconds": 0.5, "observed_seconds": 2.0, "cpu_pct": 25.0}]


def test_backup_saturation_names_the_machine_one_core_the_disk_or_nothing() -> None:
    assert backup.saturation(_step_usage(machine_cpu=92.0), 2)["resource"] == "the machine's CPU"
    single = [{"host": "db1", "command": "pg_dump", "cpu_seconds": 19.0, "observed_seconds": 19.5, "cpu_pct": 97.0}]
    core = backup.saturation(_step_usage(processes=single, seconds=20.0), 2)
    assert core["resource"] == "one core: pg_dump on db1" and "97 % of a core for 20 of 20 s" in core["evidence"]
    # A process busy for a moment of a long step held no core for the step.
    brief = [{**single[0], "observed_seconds": 3.0}]
    assert backup.saturation(_step_usage(processes=brief, seconds=20.0), 2)["resource"] == "nothing measured"
    disk = backup.saturation(_step_usage(disk_util=97.0), 2)
    assert disk["resource"] == "the disk (vda)" and "80 MB/s written" in disk["evidence"]
    nothing = backup.saturation(_step_usage(), 2)
    assert nothing["resource"] == "nothing measured"
    assert "busiest host backup1 60 % of a core, busiest process pgbackrest on db1 43 %" in nothing["evidence"]


def test_backup_report_gives_each_size_its_table_ratios_and_what_saturated() -> None:
    data = _backup_data()
    assert backup.ratios(data["sizes"][0]) == {"backup_time": 1.5, "size": 1.2, "restore_time": 0.25}
    text = backup.section(data, _context())
    assert "**100,000 jobs** (database 250.0 MB, cluster 280.0 MB; seeded in 20.0 s, vacuumed in 3.0 s" in text
    assert ("| backup | pgBackRest full (20261201-013012F) to backup1 | 30.0 | 60.0 MB in the repository "
            "(of 280.0 MB) | backup1 60 % | pgbackrest on db1 43 % | nothing measured") in text
    assert ("| backup | pg_dump -Fc on db1 | 20.0 | 50.0 MB file | backup1 60 % | pg_dump on db1 97 % | "
            "one core: pg_dump on db1") in text
    assert "| restore | drill: pgbackrest restore + WAL replay on backup1 | 15.0 (drill total 69.0 s, passed) |" in text
    assert "the machine's CPU (93 % of 2 cores busy" in text
    assert ("pgBackRest / pg_dump at 1,000,000 jobs: backup time 1.50x, stored size 1.20x; restore time "
            "(drill restore / pg_restore) 0.25x.") in text
    assert "**5,000,000 jobs:** not measured (part budget of 600s spent)." in text
    assert backup.headline(data, _context()) == (
        "at 1,000,000 jobs: backup 300 s vs pg_dump 200 s (1.50x), stored 1.20x the dump's size; "
        "restore 150 s vs pg_restore 600 s (0.25x)")
    verdict = backup.verdict(data, _context())
    assert verdict.startswith("no claim; 100,000 jobs, saturated: pgBackRest full: nothing measured; pg_dump -Fc: "
                              "one core: pg_dump on db1; drill restore: the machine's CPU; pg_restore -j 2: nothing")
    assert "5,000,000 jobs not measured (part budget of 600s spent)" in verdict
    assert "the figure is not yet a limit of the system" in verdict
    # QUICK's tiny steps last about a sample: no resource is named from them.
    short = backup.saturation(_step_usage(machine_cpu=100.0, seconds=0.6), 2)
    assert short == {"resource": "too short to judge", "evidence": "0.6 s sampled every 0.5 s"}
    assert "100,000 and 1,000,000 jobs" in backup.CLAIM


def test_backup_report_shows_a_failed_size_and_a_failed_drill_in_words() -> None:
    data = _backup_data()
    data["sizes"] = [{"jobs": 100_000, "error": "RuntimeError: pg_restore failed (exit status 1): role missing"},
                     _backup_size(1_000_000, drill_passed=False)]
    text = backup.section(data, _context())
    assert "**100,000 jobs: not measured, a step failed.** `RuntimeError: pg_restore failed" in text
    assert "(drill total 69.0 s, FAILED)" in text and "The drill failed: pg_amcheck found corruption." in text
    partial = {key: value for key, value in _backup_size(2_000_000).items() if key not in ("drill", "pg_restore")}
    data["sizes"].append({**partial, "error": "RemoteError: db1: ssh timed out"})
    assert ("**2,000,000 jobs: not measured, a step failed (measured before it, in the results file: pgBackRest "
            "full, pg_dump -Fc).** `RemoteError: db1: ssh timed out`") in backup.section(data, _context())
    assert "100,000 jobs not measured (failed)" in backup.verdict(data, _context())
    assert "(the drill FAILED)" in backup.verdict(data, _context())
    assert backup.headline({"sizes": data["sizes"][:1]}, _context()) == "-"


def test_the_report_places_the_backup_part_by_the_parts_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_plots(monkeypatch, tmp_path)
    run = small_run()
    run["parts"]["backup"] = {"status": "ok", "seconds": 900.0, "load_average_before": [1, 1, 1],
                              "load_average_after": [2, 2, 2], "data": _backup_data()}
    text = report.generate(run, tmp_path / "bench" / "results" / "x.json", tmp_path / "BENCHMARKS.md").read_text()
    assert "## 8. Backup and restore: pgBackRest vs pg_dump / pg_restore" in text
    assert "2 of 3 sizes (cut short by the 600 s part budget)" in text
    assert "Over its 600 s budget" in text
    assert "`pg_dump -Fc talentsphere` as postgres on db1" in text
    assert text.index("## 8. Backup") > text.index("## 4. View counts")


def test_machine_counters_parse_disks_and_cpu_with_io_wait(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 40 0 10 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    assert machine.cpu_breakdown(stat) == (160, 40, 1000)
    diskstats, block = tmp_path / "diskstats", tmp_path / "block"
    for name in ("vda", "zram0"):
        (block / name).mkdir(parents=True)
    diskstats.write_text(" 254 0 vda 10 0 80 5 20 0 160 9 0 1234 14 0 0 0 0\n"
                         " 254 1 vda1 10 0 80 5 20 0 160 9 0 1234 14 0 0 0 0\n"
                         " 253 0 zram0 1 0 8 0 0 0 0 0 0 7 0 0 0 0 0\n")
    assert machine.disk_counters(diskstats, block) == {"vda": (1234, 80, 160)}


# The report's structure: one list of parts, each rendering its own pieces from its own data.

COMMITTED = sorted((BENCH / "results").glob("*.json"))
NEWEST = BENCH / "results" / "20261128T174054Z.json"


def _no_plots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Render without matplotlib (the plots have a test of their own): fast, and nothing written in the tree."""
    monkeypatch.setattr(report, "REPO", tmp_path)
    monkeypatch.setattr(report, "plot", lambda name, stamp, draw: f"bench/results/{stamp}-{name}.png")


def test_every_part_in_the_one_list_owns_its_title_claim_method_section_headline_and_verdict() -> None:
    assert list(PARTS) == ["deploy", "views", "cache", "dashboard", "load", "search", "backup", "tuning"]
    for name, module in PARTS.items():
        for function in ("run", "title", "method", "section", "headline", "verdict"):
            assert callable(getattr(module, function, None)), f"part {name} has no {function}()"
        assert isinstance(module.CLAIM, str) and module.CLAIM, name
        assert isinstance(module.title({}), str), f"part {name}: a failed part (no data) still has a title"
    assert sorted(module.NUMBER for module in PARTS.values()) == list(range(1, len(PARTS) + 1))
    # The run uses the same list; report.py keeps no per-part tables of its own.
    assert "from tsbench.parts import PARTS" in (BENCH / "run.py").read_text()
    assert not {"TITLES", "CLAIMS", "SECTIONS", "CLAIMED_RANGES"} & set(vars(report))


def test_claims_are_worded_from_the_claimed_figures_the_parts_hold() -> None:
    assert report.claimed(search.CLAIMED["sql"]) in search.CLAIM and report.claimed(search.CLAIMED["http"]) in search.CLAIM
    assert report.claimed(cache.CLAIMED) in cache.CLAIM and report.claimed(dashboard.CLAIMED) in dashboard.CLAIM


@pytest.mark.parametrize("path", COMMITTED, ids=[p.stem for p in COMMITTED])
def test_every_committed_results_file_still_renders_with_each_part_in_order(path: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Older files lack keys newer runs record (settings, hosts, index count ...): the report falls back.
    _no_plots(monkeypatch, tmp_path)
    run = results.load(path)
    text = report.generate(run, path, tmp_path / "BENCHMARKS.md").read_text()
    headings = [f"## {report.heading(PARTS[name], run['parts'][name])}" for name in PARTS if name in run["parts"]]
    positions = [text.index(heading + "\n") for heading in headings]
    assert positions == sorted(positions)
    if "search" in run["parts"]:  # a run of some parts only (`--parts backup`) has no search section
        assert "38 indexes" in text  # the count `talentsphere.indexes` has, which these files predate recording


def _renamed(run: dict, renames: dict[str, str]) -> dict:
    text = json.dumps(run)
    for old, new in renames.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


def test_the_report_s_figures_hosts_and_thresholds_follow_the_results(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _no_plots(monkeypatch, tmp_path)
    hosts = {"app1": "web7", "app2": "web8", "cache1": "kv7", "db1": "pg7", "lb1": "edge7"}
    run = _renamed(results.load(NEWEST), hosts)
    run["topology"]["bench_hosts"] = {"app": "web7", "cache": "kv7", "db": "pg7", "lb": "edge7"}
    run["topology"].update(app_threads=3, app_worker_class="gthread")
    run["settings"] = {**report.ReportContext(run).settings, "part_budget_seconds": 420}
    run["machine"]["idle_sample_seconds"] = 7.0
    run["lab"]["bench_vars"] = {"nginx_api_rate": "777r/s"}
    parts = run["parts"]
    parts["search"]["data"]["index_count"] = 17
    for size in parts["search"]["data"]["sizes"]:
        for row in size["sql"]["rows"]:
            row["statements"] = 5
    parts["load"]["data"]["p95_limit_ms"] = 321.0
    parts["dashboard"]["data"].update(connections=3, company_jobs=4321)
    parts["tuning"]["data"].update(drop_in="conf.d/99-other.conf", server={"superuser_reserved_connections": "4",
                                                                          "block_size": "16384"})
    text = report.generate(run, NEWEST, tmp_path / "BENCHMARKS.md").read_text()

    for old in hosts:
        assert old not in text, f"host {old} typed into the report"
    assert "## 1. Search: with vs without the 17 indexes" in text and "the 17 indexes of `talentsphere.indexes`" in text
    assert "38 indexes" not in text
    assert "(the app's `search_jobs`, 5 statements, on web7;" in text
    assert "Redis stopped on kv7" in text and "on web7 with the app's own ViewCounter" in text
    assert "5 Gunicorn gthread workers x 3 threads per app host" in text
    assert "(7 minutes in this run)" in text and "(sampled 7 s before the run" in text
    assert "(nginx_api_rate 777r/s)" in text
    assert "three connections, the bench employer's company (4321 jobs)" in text
    assert "until p95 reaches 321 ms" in text and "p95 < 321 ms" in text and "200 ms" not in text
    assert "pg7 used at most 6 % of a core" in text
    assert "`conf.d/99-other.conf`" in text and "(PostgreSQL keeps 4 of them for superusers)" in text
    assert "temporary blocks (29 MB)" in text  # 1,876 blocks of 16 kB


def test_importing_the_report_and_every_part_needs_no_lab() -> None:
    # The report renders on any machine (and while the deploy tool is mid-change): only running a part may
    # reach for the lab and the deploy tool.
    program = ("import sys\n"
               "sys.modules['tsdeploy'] = None\n"
               f"sys.path.insert(0, {str(BENCH)!r})\n"
               "from tsbench import report\n"
               "from tsbench.parts import PARTS\n"
               "assert 'tsbench.hosts' not in sys.modules and 'yaml' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", program], check=True)


def test_bench_code_points_at_nothing_outside_the_repository() -> None:
    for path in sorted(BENCH.rglob("*.py")):
        text = path.read_text()
        for pattern in (r"\.\./shared", r"seed-report", r"\bissues? \d+", r"\bissue #?\d+"):
            assert not re.search(pattern, text, re.IGNORECASE), f"{path.relative_to(BENCH)}: {pattern}"


def test_the_search_section_tables_the_plans_of_the_largest_size(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _no_plots(monkeypatch, tmp_path)
    run = results.load(NEWEST)
    if "search" not in run["parts"]:
        pytest.skip("the newest results file has no search part")
    largest = [size for size in run["parts"]["search"]["data"]["sizes"] if "sql" in size][-1]
    largest["explain"] = {"newest (no filter)": [
        {"statement": "SELECT jobs.id FROM jobs ...", "top_node": "Limit", "rows": 61, "execution_ms": 0.42,
         "shared_hit_blocks": 70, "shared_read_blocks": 0, "temp_written_blocks": 0, "text": ["Limit ..."]}]}
    text = report.generate(run, NEWEST, tmp_path / "BENCHMARKS.md").read_text()
    assert f"**{report.f(largest['jobs'])} jobs, plans** (EXPLAIN (ANALYZE, BUFFERS)" in text
    assert "| newest (no filter) | 1 | Limit | 61 | 0.42 | 70 | 0 |" in text


def _remote_function(program: str, name: str):  # noqa: ANN202
    """One function of a remote program, without running the program (it connects to the app's database)."""
    import ast

    from tsbench.remote import source
    tree = ast.parse(source(program))
    definition = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    namespace: dict = {}
    exec(compile(ast.Module(body=[definition], type_ignores=[]), program, "exec"), namespace)  # noqa: S102
    return namespace[name]


def test_a_spill_is_counted_once_however_many_plan_nodes_lie_above_it() -> None:
    # EXPLAIN (BUFFERS): a node's counters include its children's. The dashboard's old top-jobs statement
    # spilled 469 blocks in one sort, and each node of Limit > Sort > GroupAggregate > Sort reported them.
    plan_summary = _remote_function("app_queries", "plan_summary")

    def node(kind: str, temp: int, *children: dict, **extra: object) -> dict:
        return {"Node Type": kind, "Temp Written Blocks": temp, "Plans": list(children), **extra}

    spill = {"Plan": node("Limit", 469, node("Sort", 469, node("Aggregate", 469, node(
        "Sort", 469, node("Index Only Scan", 0, **{"Index Name": "ix_applications_job_status"}))))),
             "Planning Time": 0.5, "Execution Time": 226.0}
    # Two spills under one join: the top node's figure is their sum.
    join = {"Plan": node("Merge Join", 300, node("Sort", 100, node("Seq Scan", 0)), node("Sort", 200)),
            "Planning Time": 0.25, "Execution Time": 10.0}
    no_counters = {"Plan": {"Node Type": "Result"}, "Planning Time": 0.1, "Execution Time": 0.1}
    summary = plan_summary([spill, join, no_counters])
    assert summary["temp_written_blocks"] == 469 + 300
    assert summary["indexes"] == ["ix_applications_job_status"]
    assert summary["nodes"] == ["Aggregate", "Index Only Scan", "Limit", "Merge Join", "Result", "Seq Scan", "Sort"]
    assert summary["server_ms"] == 236.95
