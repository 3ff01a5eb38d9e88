"""BENCHMARKS.md and PNG plots from one results file (the report never measures anything itself).

Each part module in `tsbench.parts` renders its own section, headline and verdict from the data it recorded;
this module assembles them in the parts' order under a header (setup, method, claims vs measured) and holds
what they share: number formatting, tables, plots, verdict words and the noise banner. Every figure in the
text comes from the results file, or, for a file older than the key that records it, from the constant the
benchmark reads.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import machine
from .results import utc_stamp
from .settings import BENCH_HOSTS, BENCH_VARS, FULL, QUICK

REPO = Path(__file__).resolve().parents[2]
MARKDOWN = REPO / "BENCHMARKS.md"
# Machine CPU busy while the bench generated no load (sampled before the run and before each part): above
# this, something else competed with the measurements.
QUIET_BUSY_PCT = 25.0
_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def f(value: Any, digits: int = 1) -> str:
    """A number for a table cell ("-" for None)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def spread(summary: dict[str, float], digits: int = 1) -> str:
    """"p50 (IQR q1-q3, min-max)" of a summary."""
    return (f"{f(summary['p50'], digits)} (IQR {f(summary['q1'], digits)}-{f(summary['q3'], digits)}, "
            f"{f(summary['min'], digits)}-{f(summary['max'], digits)})")


def count_word(count: int) -> str:
    """A small count as prose reads it ("three"); larger ones as digits."""
    return _WORDS[count] if 0 <= count < len(_WORDS) else f(count)


def duration(seconds: float) -> str:
    """A budget as prose reads it: whole minutes as minutes, anything else in seconds."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{f(seconds)} s"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell would end it: Markdown wants it escaped.
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bars(axes, labels: list[str], series: dict[str, list[float]], ylabel: str, log: bool = False) -> None:  # noqa: ANN001
    """Grouped bars, one group per label and one bar per series."""
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        axes.bar([i + index * width for i in range(len(labels))], values, width, label=name)
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=15, fontsize=8)
    axes.set_ylabel(ylabel)
    if log:
        axes.set_yscale("log")
    axes.legend(fontsize=8)


def plot(name: str, stamp: str, draw: Callable[[Any], Any]) -> str:
    """Draw one PNG next to the results (`draw` takes matplotlib's Axes) and return its path relative to the
    repository."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    draw(axes)
    figure.tight_layout()
    path = REPO / "bench" / "results" / f"{stamp}-{name}.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return str(path.relative_to(REPO))


# Verdict words: our "% of time saved" figures against a claimed (low, high) range.

def claimed(low_high: tuple[float, float]) -> str:
    """A claimed range as the claim is worded: "70-90%"."""
    return f"{f(low_high[0], 0)}-{f(low_high[1], 0)}%"


def value_range(values: list[float]) -> str:
    """"low to high %" of measured percentages."""
    return f"{f(min(values), 0)} to {f(max(values), 0)} %"


def against(values: list[float], low_high: tuple[float, float]) -> str:
    """How many of `values` (% of time saved) reach the claim's lower bound."""
    reached = sum(1 for v in values if v >= low_high[0])
    versus = f"{value_range(values)} vs {f(low_high[0], 0)}-{f(low_high[1], 0)} % claimed"
    if reached == len(values):
        return f"meets ({versus})"
    if reached == 0:
        return f"falls short ({versus})"
    return f"partly: {reached} of {len(values)} reach {f(low_high[0], 0)} % ({versus})"


@dataclass(frozen=True)
class ReportContext:
    """What a part's renderers may read besides their own data: the run (machine, topology, the settings and
    hosts it recorded) and where the plots go."""

    run: dict[str, Any]
    stamp: str = "report"

    @property
    def cores(self) -> int:
        return int(self.run["machine"]["cores"])

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the run recorded; older results files predate the record and get the current
        constants for their kind of run (quick or full)."""
        if self.run.get("settings"):
            return self.run["settings"]
        return dataclasses.asdict(QUICK if self.run.get("quick") else FULL)

    def host(self, role: str) -> str:
        """The lab host the bench used for `role` ("app", "cache", "db", "lb"), as the run recorded it."""
        return self.run.get("topology", {}).get("bench_hosts", BENCH_HOSTS)[role]

    def plot(self, name: str, draw: Callable[[Any], Any]) -> str:
        return plot(name, self.stamp, draw)


def _noise(run: dict[str, Any]) -> list[str]:
    """The banner saying whether something besides the bench used the CPU while it ran."""
    m = run["machine"]
    load_start, load_end = m["load_average"], m.get("load_average_end", m["load_average"])
    # Only what was measured while the bench itself was idle says anything about other work: the load average
    # at the end includes the bench's own load generators and lab.
    idle = [("before the run", m.get("idle_busy_pct"))] + [
        (f"before part {name}", part.get("idle_busy_pct_before")) for name, part in run["parts"].items()]
    busy = [(when, pct) for when, pct in idle if pct is not None and pct >= QUIET_BUSY_PCT]
    sampled = any(pct is not None for _, pct in idle)
    # The load average trails by minutes (it may still be decaying from work that has ended); the idle samples
    # measure the moment. Results files from before the samples existed fall back to the load average.
    if busy or (not sampled and load_start[0] >= machine.QUIET_LOAD):
        evidence = ([f"the load average was {load_start} when the run started (quiet is below {machine.QUIET_LOAD})"]
                    if not sampled else
                    [f"the machine was {f(pct, 0)} % busy {when} while the bench generated no load (quiet is below "
                     f"{f(QUIET_BUSY_PCT, 0)} %)" for when, pct in busy])
        return ["> **Noisy machine:** " + "; ".join(evidence) + ". "
                "Something besides the measured workload used the CPU (another session, or the lab's own "
                "background work such as autovacuum after a reseed), so absolute figures and small ratios are not "
                "reliable. Interleaving spreads the noise over both sides of each comparison, nothing more.", ""]
    if sampled:
        sample_seconds = m.get("idle_sample_seconds", machine.IDLE_SAMPLE_SECONDS)
        return [f"Quiet machine: at most {f(max(p for _, p in idle if p is not None), 1)} % CPU busy whenever the "
                f"bench was idle (sampled {f(float(sample_seconds), 0)} s before the run and before each part); the "
                f"load averages (start {load_start}, end {load_end}) trail by minutes and include the bench's own "
                "load.", ""]
    return []


def _workers(topology: dict[str, Any]) -> str:
    """The app hosts' Gunicorn configuration as the run recorded it."""
    workers = topology.get("app_workers_per_host", "?")
    if not topology.get("app_worker_class"):
        return f"{workers} Gunicorn workers per app host"
    threads = int(topology.get("app_threads", 1))
    return (f"{workers} Gunicorn {topology['app_worker_class']} workers"
            + (f" x {threads} threads" if threads > 1 else "") + " per app host")


def _parts(run: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, part module, results entry) for every part in the results, in the parts' order."""
    from .parts import PARTS  # the parts import this module's helpers, so they are imported only when needed

    return [(name, module, run["parts"][name]) for name, module in PARTS.items() if name in run["parts"]]


def heading(module: Any, entry: dict[str, Any]) -> str:
    """A part's numbered title (its data may be absent: the part failed)."""
    return f"{module.NUMBER}. {module.title(entry.get('data', {}))}"


def header(run: dict[str, Any], results_path: Path, context: ReportContext) -> str:
    """Title, noise banner, setup, method and the table of claims against our measurements."""
    from .parts import PARTS

    m = run["machine"]
    load_start, load_end = m["load_average"], m.get("load_average_end", m["load_average"])
    topology = run.get("topology", {})
    parts = _parts(run)
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (bench/run.py) from "
             f"`{results_path.relative_to(REPO) if results_path.is_relative_to(REPO) else results_path}`; "
             "do not edit by hand: re-run `make bench` or `bench/run.py --report-only`.", ""]
    if run["quick"]:
        lines += ["> **QUICK run (tiny data, short runs).** These figures show that the harness works and the "
                  "direction of each effect; they are not the full benchmark.", ""]
    lines += _noise(run)
    unknown = [name for name in run["parts"] if name not in PARTS]
    if unknown:
        lines += [f"Not reported (no such part in this version of the bench): {', '.join(unknown)}.", ""]
    bench_vars = run.get("lab", {}).get("bench_vars", BENCH_VARS)
    method = [
        "Every comparison runs side by side in the same run on the same hosts and data, interleaved "
        "(A, B, A, B ...) after a discarded warm-up, except where a side cannot be switched cheaply (said "
        "in the part). Tables give medians with IQR and min-max over the repetitions.",
        "HTTP load goes through nginx over HTTPS with wrk (which does not verify certificates) or locust "
        "(verifying with the lab CA). The bench inventory lifts nginx's per-address API limit ("
        + ", ".join(f"{name} {value}" for name, value in bench_vars.items())
        + "), because the load generator is a single address.",
        f"Each part has a time budget ({duration(context.settings['part_budget_seconds'])} in this run): it starts "
        "a round only if the previous round's duration still fits, so a cut-short part reports fewer rounds rather "
        "than running on; the section header gives the rounds done and the part's time."]
    for _, module, entry in parts:
        method += module.method(entry.get("data", {}), context)
    lines += ["## Setup", "",
              table(["", ""], [["run", f"{run['started_at']} to {run.get('finished_at', '?')} ({'quick' if run['quick'] else 'full'})"],
                               ["machine", f"{m['cpu_model']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.1f} GiB RAM, "
                                           f"Linux {m['kernel']}"],
                               ["load average (1/5/15 min)", f"start {load_start}, end {load_end}"],
                               ["topology", f"{topology.get('name', '?')}: {', '.join(topology.get('hosts', []))}; "
                                            f"each host sized as {topology.get('host_memory', '?')} / "
                                            f"{topology.get('host_cpus', '?')} CPUs; {_workers(topology)}, "
                                            f"pool {topology.get('pool_size', '?')} + overflow {topology.get('max_overflow', '?')}"],
                               ["caveat", topology.get("note", "")],
                               ["data", "; ".join(f"{k}: {v}" for k, v in run.get("data", {}).items()) or "as deployed"]]),
              "## Method", ""]
    lines += [f"- {bullet}" for bullet in method] + [""]
    lines += ["## Seed report claims vs measured", "",
              table(["part", "seed report claims", "measured (medians)", "verdict"],
                    [[heading(module, entry), module.CLAIM,
                      module.headline(entry["data"], context) if entry["status"] == "ok" else "-",
                      module.verdict(entry["data"], context) if entry["status"] == "ok"
                      else "not measured: the part failed"]
                     for _, module, entry in parts])]
    return "\n".join(lines)


def _budget(entry: dict[str, Any]) -> str:
    """The rounds a part did against those it planned, and whether its time budget cut them short."""
    rounds = entry.get("data", {}).get("rounds") if entry["status"] == "ok" else None
    if not rounds:
        return ""
    text = (f" {rounds['done']} of {rounds['planned']} {rounds['unit']}"
            + (f" (cut short by the {rounds['budget_seconds']} s part budget)" if rounds["cut_by_budget"] else "") + ".")
    if entry["seconds"] > rounds["budget_seconds"]:
        text += (f" Over its {rounds['budget_seconds']} s budget: the last {rounds['unit'][:-1]} started "
                 "while time was left and was finished rather than thrown away.")
    return text


def generate(run: dict[str, Any], results_path: Path, markdown: Path = MARKDOWN) -> Path:
    """Write BENCHMARKS.md (and the plots) for `run`; returns the Markdown path."""
    context = ReportContext(run, utc_stamp(datetime.fromisoformat(run["started_at"])))
    pieces = [header(run, results_path, context)]
    for _, module, entry in _parts(run):
        pieces.append(f"## {heading(module, entry)}\n\nSeed report: {module.CLAIM}. Load average "
                      f"{entry['load_average_before']} before, {entry['load_average_after']} after; CPU busy "
                      f"{f(entry.get('idle_busy_pct_before'), 0)} % while idle before it; took {f(entry['seconds'])} s."
                      f"{_budget(entry)}\n")
        if entry["status"] == "ok":
            pieces.append(module.section(entry["data"], context))
        else:
            pieces.append(f"**Not measured: the part failed.** `{entry['error'][:600]}`\n")
    markdown.write_text("\n".join(pieces).rstrip() + "\n")
    return markdown
