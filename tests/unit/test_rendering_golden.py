"""Every file the deploy writes, on every host of three inventories, matches a committed snapshot.

A refactoring of roles, context or manifest must not change what lands on a host: this renders every managed
file (content, path, owner, group, mode, secrecy), every managed directory, package and system user for each
host of `inventories/production.example` and of the lab's single and split inventories, and compares them
with `tests/unit/data/golden/<inventory>.json`.

A change that is meant to alter a rendered file updates the snapshot on purpose:
`TSDEPLOY_UPDATE_GOLDEN=1 pytest tests/unit/test_rendering_golden.py`, and the diff of the JSON is reviewed
with the change.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any

import pytest

from tsdeploy import ROOT
from tsdeploy import inventory as inventory_module
from tsdeploy.generate import render as render_generator
from tsdeploy.generate import vm as vm_generator
from tsdeploy.lab.inventory import InventoryHost, LabFiles, write_inventory
from tsdeploy.lab.topology import hosts_of
from tsdeploy import manifest
from tsdeploy.context import build_context

GOLDEN_DIR = pathlib.Path(__file__).parent / "data" / "golden"
UPDATE = os.environ.get("TSDEPLOY_UPDATE_GOLDEN") == "1"
#: Fixed values, so that the snapshot is stable: test secrets (64 hex digits, derived from their names, so that
#: they pass the secret checks), never used anywhere else.
LAB_SECRETS = {name: hashlib.sha256(f"tsdeploy golden {name}".encode()).hexdigest() for name in (
    "vault_postgresql_app_password", "vault_postgresql_owner_password", "vault_redis_app_password",
    "vault_redis_admin_password", "vault_app_secret_key", "vault_backup_repo_cipher_pass", "vault_redis_exporter_password",
    "vault_pgbouncer_auth_password")}


def managed_state(inventory: inventory_module.Inventory, host: str) -> dict[str, Any]:
    """What the deploy manages on `host`: files with their content, directories, packages, users."""
    ctx = build_context(inventory, host)
    files = []
    for item in manifest.files_for(ctx):
        placed = item.placed(ctx)
        files.append({"path": placed.dest, "user": placed.user, "group": placed.group, "mode": placed.mode,
                      "secret": item.secret,
                      # A control-node file is copied as it is: its content is the operator's, not ours.
                      "content": item.content(ctx) if item.template else "(control-node file)"})
    paths = [vars(item.placed(ctx)) | {"directory": item.directory} for _, item in manifest.paths_for(ctx)]
    return {"files": files, "paths": paths, "packages": manifest.packages_for(ctx),
            "users": manifest.users_for(ctx)}


def generated(inventory: inventory_module.Inventory, out: pathlib.Path, vm: bool) -> dict[str, Any]:
    """What `generate vm` (per host) and `generate render` write, with the inventory's path made neutral."""
    result: dict[str, Any] = {}
    for host in inventory.hosts if vm else ():
        vm_generator.write_bundle(inventory, host, out / host)
        result[host] = {name: (out / host / name).read_text() for name in ("install.sh", "README.md", "manifest.json")}
    written = render_generator.generate(inventory.path, out / "render")
    result["render"] = {path.name: path.read_text().replace(str(inventory.path), "INVENTORY") for path in written}
    return result


def _lab_inventory(root: pathlib.Path, topology: str,
                   layout: tuple[tuple[str, tuple[str, ...]], ...] | None = None) -> pathlib.Path:
    """The inventory `tsdeploy lab up --topology TOPOLOGY` writes, with fixed secrets and addresses; `layout`
    ((host, groups) pairs) replaces the topology's hosts."""
    files = root / "files"
    files.mkdir()
    for name in ("ca.pem", "host.crt"):
        (files / name).write_text("-----BEGIN CERTIFICATE-----\ngolden\n-----END CERTIFICATE-----\n")
    (files / "host.key").write_text("-----BEGIN PRIVATE KEY-----\ngolden\n-----END PRIVATE KEY-----\n")
    (files / "vault-password").write_text("golden-vault-password\n")
    (files / "vault-password").chmod(0o600)
    hosts = [InventoryHost(name, f"198.18.0.{10 + index}", groups, str(files / "host.crt"), str(files / "host.key"))
             for index, (name, groups) in enumerate(layout or hosts_of(topology))]
    lb = next(host.address for host in hosts if "lb" in host.groups)
    write_inventory(root / "inventory", lab_name="golden", hosts=hosts,
                    files=LabFiles(str(files / "id_ed25519"), str(files / "known_hosts"), str(files / "ca.pem"),
                                   str(files / "vault-password")),
                    release="bookworm", subnet="198.18.0.0/24", lb_address=lb, secrets=LAB_SECRETS)
    return root / "inventory"


@pytest.fixture(scope="module")
def inventories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, inventory_module.Inventory]:
    single = _lab_inventory(tmp_path_factory.mktemp("single"), "single")
    split = _lab_inventory(tmp_path_factory.mktemp("split"), "split")
    return {
        # The example names files that do not exist here and has no vault: placeholders stand in for both.
        "production.example": inventory_module.load(ROOT / "inventories" / "production.example",
                                                    secrets=False, files=False),
        "lab-single": inventory_module.load(single),
        "lab-split": inventory_module.load(split),
    }


@pytest.mark.parametrize("name", ["production.example", "lab-single", "lab-split"])
def test_every_managed_file_directory_package_and_user_renders_as_in_the_snapshot(inventories, name) -> None:
    inventory = inventories[name]
    rendered: dict[str, Any] = {host: managed_state(inventory, host) for host in inventory.hosts}
    golden = GOLDEN_DIR / f"{name}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(rendered, indent=1, sort_keys=True) + "\n")
    expected = json.loads(golden.read_text())
    assert sorted(rendered) == sorted(expected), f"{name}: hosts differ"
    for host in expected:
        for part in ("files", "paths", "packages", "users"):
            got, want = rendered[host][part], expected[host][part]
            if part == "files":
                assert [f["path"] for f in got] == [f["path"] for f in want], f"{name}:{host}: files differ"
                for got_file, want_file in zip(got, want):
                    assert got_file == want_file, f"{name}:{host}:{want_file['path']} differs from the snapshot"
            else:
                assert got == want, f"{name}:{host}: managed {part} differ from the snapshot"


@pytest.mark.parametrize("name", ["production.example", "lab-single", "lab-split"])
def test_generated_vm_bundles_and_render_blueprint_match_the_snapshot(inventories, name, tmp_path) -> None:
    # The example's TLS files do not exist here and `generate vm` copies them: its bundles are left out.
    rendered = generated(inventories[name], tmp_path, vm=name != "production.example")
    golden = GOLDEN_DIR / f"{name}.generated.json"
    if UPDATE:
        golden.write_text(json.dumps(rendered, indent=1, sort_keys=True) + "\n")
    expected = json.loads(golden.read_text())
    assert sorted(rendered) == sorted(expected)
    for key, files in expected.items():
        for file_name, content in files.items():
            assert rendered[key][file_name] == content, f"{name}: {key}/{file_name} differs from the snapshot"
