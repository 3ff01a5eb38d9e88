"""Statistics for side-by-side comparisons: summaries with spread, ratios of medians, interleaved runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) by linear interpolation between closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("percentile of no samples: measure at least one value")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction!r} must be between 0 and 1")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: list[float]) -> dict[str, float]:
    """n, median (p50), p95, quartiles, IQR, min, max and mean of `samples`."""
    q1, q3 = percentile(samples, 0.25), percentile(samples, 0.75)
    return {"n": len(samples), "p50": percentile(samples, 0.5), "p95": percentile(samples, 0.95),
            "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(samples), "max": max(samples),
            "mean": statistics.fmean(samples)}


def reduction(candidate: float, baseline: float) -> float | None:
    """How much smaller `candidate` is than `baseline`, in percent (the report's "70% faster" form).

    Positive: the candidate takes less time; negative: it takes more. None when the baseline is zero.
    """
    if baseline == 0:
        return None
    return (1.0 - candidate / baseline) * 100.0


def speedup(candidate: float, baseline: float) -> float | None:
    """baseline / candidate: 3.0 means the candidate needs a third of the baseline's time."""
    if candidate == 0:
        return None
    return baseline / candidate


def compare(candidate: list[float], baseline: list[float]) -> dict[str, object]:
    """Both summaries and the ratio of their medians (times: smaller is better)."""
    a, b = summarize(candidate), summarize(baseline)
    return {"candidate": a, "baseline": b, "speedup_p50": speedup(a["p50"], b["p50"]),
            "reduction_p50_pct": reduction(a["p50"], b["p50"]),
            "reduction_p95_pct": reduction(a["p95"], b["p95"])}


def interleave(variants: Mapping[str, Callable[[], T]], repetitions: int, warmup: int = 1) -> dict[str, list[T]]:
    """Run each variant `warmup` times (discarded), then A, B, A, B ... `repetitions` rounds.

    Interleaving spreads slow drifts of a shared machine (other load, caches warming) over every variant
    instead of charging them to whichever ran last.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions {repetitions!r} must be at least 1")
    for run in variants.values():
        for _ in range(warmup):
            run()
    results: dict[str, list[T]] = {name: [] for name in variants}
    for _ in range(repetitions):
        for name, run in variants.items():
            results[name].append(run())
    return results
