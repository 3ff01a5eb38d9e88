"""The verify suite and its catalogue agree: no check names an unknown control, no control lacks a check."""

from __future__ import annotations

import re

from tsdeploy import ROOT, controls

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
