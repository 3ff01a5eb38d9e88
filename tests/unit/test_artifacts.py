"""The release artifact: a content-addressed release id, and an offline wheelhouse built once per release."""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import tarfile

import pytest

from tsdeploy import artifacts

APP_DIR = pathlib.Path(__file__).parents[2] / "app"


def copy_app(target: pathlib.Path) -> pathlib.Path:
    """A private copy of the app's release inputs, safe to edit."""
    copy = target / "app"
    copy.mkdir()
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(APP_DIR / name, copy / name)
    shutil.copytree(APP_DIR / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return copy


@pytest.fixture
def app_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    return copy_app(tmp_path)


def test_release_id_is_the_same_for_the_same_inputs(app_copy, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(app_copy, twin)
    assert artifacts.release_id(app_copy) == artifacts.release_id(twin)


def test_release_id_changes_when_the_app_code_changes(app_copy):
    before = artifacts.release_id(app_copy)
    (app_copy / "src" / "talentsphere" / "__init__.py").write_text('"""Changed."""\n')
    assert artifacts.release_id(app_copy) != before


def test_release_id_changes_when_a_pin_changes(app_copy):
    before = artifacts.release_id(app_copy)
    with (app_copy / "requirements.txt").open("a") as pins:
        pins.write("six==1.17.0\n")
    assert artifacts.release_id(app_copy) != before


def test_release_id_ignores_build_output_and_bytecode(app_copy):
    before = artifacts.release_id(app_copy)
    (app_copy / "build").mkdir()
    (app_copy / "build" / "junk.py").write_text("x = 1\n")
    (app_copy / "src" / "talentsphere" / "__pycache__").mkdir()
    (app_copy / "src" / "talentsphere" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (app_copy / "src" / "talentsphere.egg-info").mkdir()
    (app_copy / "src" / "talentsphere.egg-info" / "PKG-INFO").write_text("Name: x\n")
    assert artifacts.release_id(app_copy) == before


def test_unknown_debian_release_is_refused_with_the_known_ones():
    with pytest.raises(artifacts.ArtifactError, match=r"debian_release='buster'.*bookworm, trixie"):
        artifacts.target_python("buster")


def test_directory_without_pins_is_not_an_app(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(artifacts.ArtifactError, match="requirements.txt"):
        artifacts.release_id(tmp_path)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def frozen_app(tmp_path_factory) -> pathlib.Path:
    """One copy of the app for the build tests, so that they compare builds of the same inputs."""
    return copy_app(tmp_path_factory.mktemp("frozen"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, frozen_app) -> artifacts.Artifact:
    """The real wheelhouse for Debian 12's CPython 3.11, built once into a private cache (pip, PyPI)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TSDEPLOY_CACHE_DIR", str(cache))
        yield artifacts.build("bookworm", frozen_app)


def test_wheelhouse_holds_the_app_wheel_every_pin_and_the_pins_file(built):
    with tarfile.open(built.tarball) as archive:
        names = archive.getnames()
    assert built.wheel_name in names and "requirements.txt" in names
    pins = [line.split("==")[0].strip().lower().replace("-", "_")
            for line in (APP_DIR / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    wheels = {name.split("-")[0].lower() for name in names if name.endswith(".whl")}
    assert set(pins) <= wheels


def test_wheelhouse_has_only_wheels_for_the_target_python_and_manylinux_x86_64(built):
    with tarfile.open(built.tarball) as archive:
        tags = [name.removesuffix(".whl").split("-")[-3:] for name in archive.getnames() if name.endswith(".whl")]
    for python_tag, abi_tag, platform_tag in tags:
        assert python_tag.startswith(("py3", "cp311")), python_tag
        assert platform_tag == "any" or ("manylinux" in platform_tag and platform_tag.endswith("x86_64"))


def test_second_build_with_the_same_inputs_reuses_the_cached_tarball(built, frozen_app, monkeypatch):
    monkeypatch.setenv("TSDEPLOY_CACHE_DIR", str(built.tarball.parents[2]))
    before = (sha256(built.tarball), built.tarball.stat().st_mtime_ns)
    again = artifacts.build("bookworm", frozen_app)
    assert again == built
    assert (sha256(again.tarball), again.tarball.stat().st_mtime_ns) == before


def test_rebuilding_from_scratch_gives_byte_identical_tarballs(built, frozen_app, tmp_path, monkeypatch):
    monkeypatch.setenv("TSDEPLOY_CACHE_DIR", str(tmp_path))
    assert sha256(artifacts.build("bookworm", frozen_app).tarball) == sha256(built.tarball)


@pytest.mark.parametrize(("installed", "keep", "protected", "pruned"), [
    ({"a": 1, "b": 2, "c": 3, "d": 4}, 3, {"d"}, ["a"]),
    ({"a": 1, "b": 2, "c": 3, "d": 4}, 2, {"a"}, ["b", "c"]),
    ({"a": 1, "b": 2}, 3, {"b"}, []),
    ({"a": 1, "b": 2, "c": 3}, 1, {"a", "c"}, ["b"]),
])
def test_pruning_keeps_the_newest_releases_and_never_the_live_or_new_one(installed, keep, protected, pruned):
    assert artifacts.releases_to_prune(installed, keep, protected) == pruned
