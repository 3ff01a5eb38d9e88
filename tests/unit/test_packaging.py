"""`pip install .` (not editable) gives a tsdeploy that works from any directory, without the checkout.

The wheel carries the roles package and, in tsdeploy/_bundle, the pyinfra entry points, the templates, the
verify suite, the example inventory and the app's source. The test installs it into a fresh virtualenv whose
only other packages are the control node's pinned dependencies (reached through a .pth file, so the
checkout's editable install is not visible there), then runs the generators from a scratch directory and
compares their output with the checkout's.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tsdeploy import ROOT

EXAMPLE = ROOT / "inventories" / "production.example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A virtualenv with tsdeploy installed from a wheel of this checkout; returns its bin/ directory."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = pathlib.Path(subprocess.run([venv / "bin" / "python", "-c",
                                        "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       check=True, capture_output=True, text=True).stdout.strip())
    (site / "control-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # pip builds in the source tree (build/, *.egg-info): build from a copy, so the checkout stays clean.
    source = venv.parent / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                "bench", "reports"))
    built = subprocess.run([venv / "bin" / "pip", "install", "--quiet", "--no-deps", str(source)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    return venv / "bin"


def _run(command: list[object], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)


def test_the_installed_package_finds_its_bundle_not_the_checkout(installed, tmp_path) -> None:
    probe = _run([installed / "python", "-c", "import json, tsdeploy, roles; "
                  "print(json.dumps([str(tsdeploy.ROOT), roles.__file__]))"], tmp_path)
    assert probe.returncode == 0, probe.stderr
    root, roles_file = json.loads(probe.stdout)
    assert pathlib.Path(root).name == "_bundle" and not pathlib.Path(root).is_relative_to(ROOT)
    assert not pathlib.Path(roles_file).is_relative_to(ROOT)
    for shipped in ("deploy.py", "inventories/ansible.py", "templates/postgres/tsdeploy.conf.j2",
                    "tests/infra/conftest.py", "tests/infra/controls.yml", "app/pyproject.toml", "app/src"):
        assert (pathlib.Path(root) / shipped).exists(), f"{shipped} is not in the wheel"


@pytest.mark.parametrize("host", ["db1", "app1", "lb1"])
def test_generate_vm_from_another_directory_writes_what_the_checkout_writes(installed, tmp_path, host) -> None:
    out = tmp_path / "installed"
    result = _run([installed / "tsdeploy", "generate", "vm", "--inventory", EXAMPLE, "--host", host, "--out", out],
                  tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    reference = tmp_path / "checkout"
    checkout = _run([pathlib.Path(sys.executable).parent / "tsdeploy", "generate", "vm", "--inventory", EXAMPLE,
                     "--host", host, "--out", reference], ROOT)
    assert checkout.returncode == 0, checkout.stdout + checkout.stderr
    assert json.loads((out / "manifest.json").read_text()) == json.loads((reference / "manifest.json").read_text())
    for name in ("install.sh", "README.md"):
        assert (out / name).read_text() == (reference / name).read_text(), name


def test_generate_render_from_another_directory_works(installed, tmp_path) -> None:
    result = _run([installed / "tsdeploy", "generate", "render", "--inventory", EXAMPLE, "--out", tmp_path / "out"],
                  tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out" / "render.yaml").is_file() and (tmp_path / "out" / "app" / "gunicorn.conf.py").is_file()
