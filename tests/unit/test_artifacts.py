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


def host(live: str | None, went_live: dict[str, int] | None = None, **installed: int) -> dict:
    """An AppReleases fact: releases by install time, when each went live (default: at install), the live one."""
    return {"releases": dict(installed), "went_live": dict(installed) if went_live is None else went_live,
            "current": f"/opt/talentsphere/releases/{live}" if live else None}


def test_rollback_goes_to_the_release_that_was_live_before_the_live_one():
    hosts = {"app1": host("c", a=1, b=2, c=3), "app2": host("c", a=5, b=6, c=7)}
    assert artifacts.rollback_target(hosts) == "b"


def test_rollback_skips_a_release_that_was_installed_but_never_went_live():
    # A failed deploy leaves its (broken) release installed but never switched to.
    assert artifacts.rollback_target({"app1": host("b", {"a": 1, "b": 3}, a=1, broken=2, b=3)}) == "a"


def test_a_second_rollback_returns_to_the_release_rolled_back_from():
    # b went live at 2, then the rollback made a live again at 3: the one before a is now b.
    assert artifacts.rollback_target({"app1": host("a", {"a": 3, "b": 2}, a=1, b=2)}) == "b"


def test_rollback_is_refused_when_no_other_release_has_been_live():
    with pytest.raises(artifacts.RollbackRefused, match=r"no previous release on app1: .*\(a\) has served"):
        artifacts.rollback_target({"app1": host("a", {"a": 1}, a=1, broken=2)})


def test_rollback_is_refused_when_app_hosts_run_different_releases():
    with pytest.raises(artifacts.RollbackRefused, match=r"different releases \(app1: b, app2: a\).*--to"):
        artifacts.rollback_target({"app1": host("b", a=1, b=2), "app2": host("a", a=1, b=2)})


def test_rollback_to_a_named_release_needs_it_on_every_app_host():
    hosts = {"app1": host("c", a=1, c=3), "app2": host("c", b=2, c=3)}
    assert artifacts.rollback_target(hosts, to="c") == "c"
    with pytest.raises(artifacts.RollbackRefused,
                       match=r"release a is not installed on every app host \(app2 has b, c\)"):
        artifacts.rollback_target(hosts, to="a")


def test_rollback_without_app_hosts_is_refused():
    with pytest.raises(artifacts.RollbackRefused, match="no app hosts"):
        artifacts.rollback_target({})


def test_a_deploy_ships_the_pinned_release_from_the_cache_without_reading_the_app_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("TSDEPLOY_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TSDEPLOY_APP_DIR", str(tmp_path / "no-app-here"))
    monkeypatch.setenv(artifacts.RELEASE_ENV, "1a2b3c4d5e6f")
    release = tmp_path / "artifacts" / "1a2b3c4d5e6f"
    release.mkdir(parents=True)
    (release / "wheelhouse-py3.11.2.tar").write_bytes(b"tar")
    (release / "wheelhouse-py3.11.2.wheel").write_text("talentsphere-0.1.0-py3-none-any.whl\n")
    artifact = artifacts.for_deploy("bookworm")
    assert (artifact.release_id, artifact.wheel_name) == ("1a2b3c4d5e6f", "talentsphere-0.1.0-py3-none-any.whl")


def test_a_pinned_release_missing_from_the_cache_is_an_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TSDEPLOY_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(artifacts.RELEASE_ENV, "1a2b3c4d5e6f")
    with pytest.raises(artifacts.ArtifactError, match=r"TSDEPLOY_RELEASE_ID=1a2b3c4d5e6f: .* no wheelhouse for "
                                                      r"CPython 3\.13\.5"):
        artifacts.for_deploy("trixie")


def test_the_snapshot_holds_exactly_the_files_the_release_id_hashes(app_copy, tmp_path):
    (app_copy / "src" / "talentsphere" / "__pycache__").mkdir(exist_ok=True)
    (app_copy / "src" / "talentsphere" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    frozen = artifacts.snapshot(app_copy, tmp_path / "snap")
    assert artifacts.release_id(frozen) == artifacts.release_id(app_copy)
    assert not list(frozen.rglob("*.pyc"))


def test_releases_from_failed_deploys_are_pruned_before_the_rollback_target():
    # a served, then two failed deploys left b and c, then d went live: keeping 3 must keep a (rollback target).
    assert artifacts.releases_to_prune({"a": 1, "b": 2, "c": 3, "d": 4}, keep=3, protected={"d"},
                                       went_live={"a", "d"}) == ["b"]
