"""The verify suite's control catalogue and the auditor summary built from a JUnit XML run.

The catalogue (`tests/infra/controls.yml`) lists every control a check covers. Each test in `tests/infra`
names its controls with `@pytest.mark.control("id", ...)`; the suite records them as JUnit `control`
properties, and `build_rows` folds the test cases into one row per control:

- fail: at least one check of the control failed (or errored);
- not run: no check ran to the end (skipped, e.g. "needs secret vault_redis_app_password", or none collected);
- deviation: every check passed, but the control is a documented deviation from the public baseline
  (never counted as a pass);
- pass: every check ran and passed.
"""

from __future__ import annotations

import dataclasses
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

import yaml

from tsdeploy import ROOT

CATALOGUE = ROOT / "tests" / "infra" / "controls.yml"
PASS, FAIL, DEVIATION, NOT_RUN = "pass", "fail", "deviation", "not run"
_PRIORITIES = ("P1", "P2")


@dataclasses.dataclass(frozen=True)
class Control:
    """One control of the catalogue."""

    id: str
    title: str
    baseline: str
    priority: str
    deviation: str | None = None


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One test case of a JUnit run: its id, the controls it covers, its outcome and message."""

    name: str
    controls: tuple[str, ...]
    outcome: str  # "passed" | "failed" | "skipped"
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Row:
    """One summary row: a control, its status and what the checks said."""

    control: Control
    status: str
    passed: int
    failed: int
    skipped: int
    notes: tuple[str, ...]


def load_catalogue(path: pathlib.Path = CATALOGUE) -> list[Control]:
    """Read and validate the catalogue; errors name the entry, the field and the fix."""
    entries = yaml.safe_load(path.read_text())["controls"]
    controls: list[Control] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: controls[{index}] ({entry.get('id', '?')})"
        for field in ("id", "title", "baseline", "priority"):
            if not entry.get(field):
                raise ValueError(f"{where}: missing '{field}'; every control needs id, title, baseline, priority")
        if entry["priority"] not in _PRIORITIES:
            raise ValueError(f"{where}: priority {entry['priority']!r} is not one of {', '.join(_PRIORITIES)}")
        if entry["id"] in seen:
            raise ValueError(f"{where}: duplicate id {entry['id']!r}; ids must be unique")
        seen.add(entry["id"])
        controls.append(Control(entry["id"], entry["title"], entry["baseline"], entry["priority"],
                                entry.get("deviation")))
    return controls


def read_junit(path: pathlib.Path) -> list[CaseResult]:
    """Return every test case of a JUnit XML file with its `control` properties and outcome."""
    results: list[CaseResult] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        controls = tuple(prop.get("value", "") for prop in case.iter("property") if prop.get("name") == "control")
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error"):
            element = case.find(tag)
            if element is not None:
                outcome, message = "failed", element.get("message", "") or (element.text or "")
                break
        else:
            skipped = case.find("skipped")
            if skipped is not None:
                outcome, message = "skipped", skipped.get("message", "")
        results.append(CaseResult(name, controls, outcome, _first_line(message)))
    return results


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def build_rows(catalogue: Sequence[Control], cases: Iterable[CaseResult]) -> list[Row]:
    """Fold test cases into one row per catalogue control (in catalogue order).

    A case naming a control that is not in the catalogue raises ValueError: the report must not drop it.
    """
    by_id = {control.id: control for control in catalogue}
    grouped: dict[str, list[CaseResult]] = {control.id: [] for control in catalogue}
    for case in cases:
        for control_id in case.controls:
            if control_id not in by_id:
                raise ValueError(f"{case.name} names control {control_id!r}, which is not in {CATALOGUE.name}; "
                                 "add it to the catalogue or fix the marker")
            grouped[control_id].append(case)
    return [_row(by_id[control_id], results) for control_id, results in grouped.items()]


def _row(control: Control, results: list[CaseResult]) -> Row:
    passed = sum(r.outcome == "passed" for r in results)
    failed = [r for r in results if r.outcome == "failed"]
    skipped = [r for r in results if r.outcome == "skipped"]
    notes: list[str] = [f"FAILED {r.name}: {r.message}" for r in failed]
    notes += sorted({f"not run: {r.message}" for r in skipped})
    if failed:
        status = FAIL
    elif skipped or not results:
        status = NOT_RUN
        if not results:
            notes.append("not run: no check was collected for the selected hosts")
    elif control.deviation:
        status = DEVIATION
    else:
        status = PASS
    if control.deviation:
        notes.append(f"deviation: {' '.join(control.deviation.split())}")
    return Row(control, status, passed, len(failed), len(skipped), tuple(notes))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def count_line(rows: Sequence[Row]) -> str:
    """One line with the number of controls in each status."""
    counts = {status: sum(row.status == status for row in rows) for status in (PASS, FAIL, DEVIATION, NOT_RUN)}
    return (f"Controls: {len(rows)} · pass {counts[PASS]} · fail {counts[FAIL]} · "
            f"deviation {counts[DEVIATION]} · not run {counts[NOT_RUN]}")


def render_summary(rows: Sequence[Row], *, title: str, duration_s: float | None = None) -> str:
    """Return summary.md: counts by status, then one table row per control, P1 first."""
    lines = [f"# {title}", ""]
    if duration_s is not None:
        lines += [f"Duration: {duration_s:.0f} s", ""]
    lines += [
        count_line(rows),
        "",
        "A deviation is a deliberate, documented difference from the public baseline; it is never counted as a "
        "pass. \"not run\" means no check of the control ran to the end (see the note for why).",
        "",
        "| Control | Priority | Status | Checks (pass/fail/not run) | Title | Baseline | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r.control.priority):
        lines.append(
            f"| {_cell(row.control.id)} | {row.control.priority} | {row.status} | "
            f"{row.passed}/{row.failed}/{row.skipped} | {_cell(row.control.title)} | "
            f"{_cell(row.control.baseline)} | {_cell('; '.join(row.notes))} |"
        )
    return "\n".join(lines) + "\n"


def failed_controls(rows: Iterable[Row]) -> list[str]:
    """Return the ids of the controls whose status is fail."""
    return [row.control.id for row in rows if row.status == FAIL]
