"""`tsdeploy.units.parse_size` is the one size parser: the inventory and `tsdeploy tune --memory` agree on it.

The inventory half builds a temporary inventory with test_inventory's `write_inventory` and reads it through
the public entry points (`tsdeploy.inventory.load`, `tsdeploy.context.build_context`).
"""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner

from test_inventory import write_inventory
from tsdeploy import tuning, units
from tsdeploy.context import build_context
from tsdeploy.inventory import InventoryError, load
from tsdeploy.tune_cli import tune as tune_command

GiB = 1024**3
BAD_SIZES = ["2XB", "0GB", "-1", True]


@pytest.mark.parametrize("value, expected", [
    (1024, 1024), ("1024", 1024), ("16GB", 16 * GiB), ("512MB", 512 * 1024**2), ("64kb", 64 * 1024),
    ("64kB", 64 * 1024), ("2GiB", 2 * GiB), ("2 GB", 2 * GiB), ("2 gib", 2 * GiB), ("4g", 4 * GiB),
    ("3KiB", 3 * 1024), ("1tb", 1024 * GiB), ("100B", 100),
])
def test_parse_size_reads_bytes_and_1024_based_units(value: object, expected: int) -> None:
    assert units.parse_size(value) == expected


@pytest.mark.parametrize("value", [*BAD_SIZES, "16XB", "GB", "-1GB", "1.5GB", "", "2Gi", 0, -1, 4.0, None])
def test_parse_size_refuses_naming_the_accepted_forms(value: object) -> None:
    with pytest.raises(ValueError) as raised:
        units.parse_size(value)
    assert str(raised.value) == f"cannot read size {value!r}: expected {units.SIZE_FORMS}"
    assert "like 16GB, 512MB or 2GiB" in units.SIZE_FORMS


def test_format_size_writes_the_largest_exact_unit() -> None:
    assert [units.format_size(size) for size in (4 * GiB, 512 * 1024**2, 64 * 1024, 1000)] == \
        ["4GB", "512MB", "64KB", "1000B"]


def tune_memory(monkeypatch: pytest.MonkeyPatch, value: str):
    """Run `tsdeploy tune --memory value --cpus 2`; return (result, the bytes it passed to tuning.tune)."""
    seen = []
    real_tune = tuning.tune
    monkeypatch.setattr(tuning, "tune", lambda **kwargs: seen.append(kwargs["memory"]) or real_tune(**kwargs))
    result = CliRunner().invoke(tune_command, ["--memory", value, "--cpus", "2"])
    return result, seen[0] if seen else None


def test_2gib_means_the_same_bytes_in_the_inventory_and_in_tune(tmp_path: pathlib.Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = load(write_inventory(tmp_path, host_overrides={"db1": {"host_memory": "2GiB"}}))
    result, tuned_memory = tune_memory(monkeypatch, "2GiB")
    assert result.exit_code == 0, result.output
    assert build_context(inventory, "db1")["host"]["memory"] == tuned_memory == 2 * GiB


@pytest.mark.parametrize("value", BAD_SIZES)
def test_a_bad_size_is_refused_by_the_inventory_and_by_tune(tmp_path: pathlib.Path, value: object,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InventoryError) as raised:
        load(write_inventory(tmp_path, host_overrides={"db1": {"host_memory": value}}))
    assert [problem.split(" (")[0] for problem in raised.value.problems] == [f"db1: host_memory = {value!r}"]

    result, tuned_memory = tune_memory(monkeypatch, str(value))
    assert result.exit_code != 0 and tuned_memory is None
    with pytest.raises(ValueError) as parsed:
        units.parse_size(str(value))
    assert result.stderr.strip() == f"Error: invalid value for '--memory': {parsed.value}"


@pytest.mark.parametrize("value", BAD_SIZES)
def test_the_inventory_refuses_a_bad_size_naming_the_parsers_accepted_forms(tmp_path: pathlib.Path, value: object) -> None:
    with pytest.raises(InventoryError) as raised:
        load(write_inventory(tmp_path, host_overrides={"db1": {"host_memory": value}}))
    assert units.SIZE_FORMS in raised.value.problems[0]
