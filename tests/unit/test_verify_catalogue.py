"""The verify suite and its catalogue agree: no check names an unknown control, no control lacks a check,
and every template the deploy renders is covered by the drift check."""

from __future__ import annotations

import importlib
import re

from tsdeploy import ROOT, TEMPLATES_DIR, controls

SUITE = ROOT / "tests" / "infra"
_MARKER = re.compile(r"mark\.control\(\s*\"([^\"]+)\"")


def _marked_controls() -> set[str]:
    return {match for path in SUITE.glob("test_*.py") for match in _MARKER.findall(path.read_text())}


def test_every_control_a_check_names_is_in_the_catalogue():
    catalogue = {control.id for control in controls.load_catalogue()}
    assert _marked_controls() - catalogue == set()


def test_every_catalogue_control_has_at_least_one_check():
    catalogue = {control.id for control in controls.load_catalogue()}
    assert catalogue - _marked_controls() == set()


def test_every_deviation_gives_a_reason_of_at_least_one_sentence():
    for control in controls.load_catalogue():
        if control.deviation is not None:
            assert len(control.deviation.split()) >= 8, control.id


def test_every_template_is_covered_by_the_drift_check(monkeypatch):
    monkeypatch.syspath_prepend(str(SUITE))
    module = importlib.import_module("managed")
    covered = {item.template for item in module.MANAGED_FILES if item.template}
    templates = {path.relative_to(TEMPLATES_DIR).as_posix() for path in TEMPLATES_DIR.rglob("*.j2")}
    assert templates - covered == set()
