"""The common role's journald drop-in: persistent, bounded by the inventory, validated before any host is touched."""

from __future__ import annotations

import configparser
import pathlib

import pytest

from roles.common import manifest
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

from test_inventory import problems_of, write_inventory as write_validated_inventory
from test_templates_app import write_inventory


def journald_reads(tmp_path: pathlib.Path, host: str = "db1", **settings) -> dict[str, str]:
    """The [Journal] section of the rendered drop-in, parsed as journald's INI format."""
    ctx = build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, settings)), host)
    text = render(manifest.JOURNALD.template, ctx)
    assert MANAGED_MARKER in text.splitlines()[0]
    parser = configparser.ConfigParser(comment_prefixes=("#", ";"), interpolation=None)
    parser.optionxform = str  # journald's keys are case-sensitive
    parser.read_string(text)
    assert parser.sections() == ["Journal"]
    return dict(parser["Journal"])


@pytest.mark.parametrize("host", ["db1", "cache1", "app1", "lb1"])
def test_every_host_keeps_a_persistent_journal_of_at_most_1g_and_one_month_by_default(tmp_path, host) -> None:
    assert journald_reads(tmp_path, host) == {"Storage": "persistent", "SystemMaxUse": "1G",
                                              "MaxRetentionSec": "1month"}


@pytest.mark.parametrize("retention", ["2week", "30d", "90 days", "1y"])
def test_the_inventory_sets_the_journals_size_and_retention(tmp_path, retention) -> None:
    assert journald_reads(tmp_path, journald_max_use="500M", journald_max_retention=retention) == {
        "Storage": "persistent", "SystemMaxUse": "500M", "MaxRetentionSec": retention}


def test_the_drop_in_is_read_after_debians_journald_conf_and_is_not_secret(tmp_path) -> None:
    ctx = build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, {})), "app1")
    assert manifest.JOURNALD.dest(ctx).startswith("/etc/systemd/journald.conf.d/")
    assert manifest.JOURNALD.placed(ctx).mode == "644" and not manifest.JOURNALD.secret


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("journald_max_use", "1GB", "is not a journald size; fix: write a whole number with K, M, G or T"),
    ("journald_max_use", "0G", "is not a journald size"),
    ("journald_max_use", 1024, "is not a journald size"),
    ("journald_max_retention", "1 fortnight", "is not a systemd time span; fix: write a whole number and one unit"),
    ("journald_max_retention", "1.5month", "is not a systemd time span"),
    ("journald_max_retention", "forever", "is not a systemd time span"),
])
def test_a_bound_journald_would_not_read_is_refused_naming_the_variable_and_the_fix(tmp_path, variable, value,
                                                                                    problem) -> None:
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={variable: value}))
    assert problems and f"{variable} = {value!r}" in problems[0] and problem in problems[0], problems
