"""Results files: one JSON document per run in bench/results/<UTC timestamp>.json."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
SCHEMA = 1


def utc_stamp(moment: datetime | None = None) -> str:
    """A file-name-safe UTC timestamp, e.g. 20250101T120000Z."""
    return (moment or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def new_run(quick: bool, machine: dict[str, Any]) -> dict[str, Any]:
    """The skeleton every run fills in: when, how (quick or full), where, and one entry per part."""
    return {"schema": SCHEMA, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": quick, "machine": machine, "topology": {}, "data": {}, "parts": {}}


def write(run: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """Write `run` as <started_at stamp>.json in `directory` and return the path."""
    started = datetime.fromisoformat(run["started_at"])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{utc_stamp(started)}.json"
    path.write_text(json.dumps(run, indent=2, sort_keys=False) + "\n")
    return path


def load(path: Path) -> dict[str, Any]:
    """Read a results file, refusing other schema versions with the fix."""
    run = json.loads(path.read_text())
    if run.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {run.get('schema')!r} is not {SCHEMA}; re-run `make bench` to regenerate it")
    return run


def latest(directory: Path = RESULTS_DIR) -> Path:
    """The newest results file (names sort by time)."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {directory}; run `make bench QUICK=1` first")
    return files[-1]
