"""`tsdeploy generate render` accepts the inventory the lab writes (real vault, real CA files) and the
blueprint it writes passes Render's schema: the lab is the product's default inventory, so it must work there."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from click.testing import CliRunner

from tsdeploy.generate import generate as generate_group
from tsdeploy.generate.render import validate

pytestmark = pytest.mark.e2e


def test_lab_inventory_blueprint_validates_against_renders_schema(split_lab, tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(generate_group, ["render", "--inventory", str(split_lab.inventory_dir),
                                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((tmp_path / "render.yaml").read_text())
    validate(document)  # raises BlueprintError naming the path of the first real schema error
    assert {item["type"] for item in document["services"]} >= {"web", "keyvalue"}
    assert (tmp_path / "app" / "gunicorn.conf.py").is_file()
