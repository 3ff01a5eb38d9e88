"""Build the app's release artifact on the control node: its wheel plus an offline wheelhouse.

Hosts never reach PyPI (design decision 6). The control node builds, once per release and target Python,
one tarball holding the `talentsphere` wheel, a wheel for every locked dependency (manylinux, x86_64, for the
target's CPython) and `requirements.txt`: the entries of `requirements.lock` that the target's markers select,
each with its hashes. pip downloads, and the host installs, in hash-checking mode (`--require-hashes`): no
wheel reaches a host unless the lock names its sha256, and a dependency the lock does not cover stops the build.

The release id is a content hash of the app's source and pins, so the same inputs give the same release id
and the same tarball bytes: a second deploy uploads and installs nothing. The release files are copied into
a snapshot first and both the hash and the wheel come from that copy, so an app tree edited during a build
cannot give a tarball whose code differs from its id. `tsdeploy deploy` builds once before pyinfra starts
and pins the release id for the whole run (TSDEPLOY_RELEASE_ID), so every app host gets the same release.
`releases_to_prune` decides which installed releases a host keeps (the live one, the new one and the newest
`app_releases_keep`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from tsdeploy import ROOT

#: The app's source tree (its own pyproject, `src/`, pins); TSDEPLOY_APP_DIR ships another tree instead
#: (the e2e test ships a deliberately broken release this way).
APP_DIR = ROOT / "app"
#: Where artifacts are cached on the control node; override with TSDEPLOY_CACHE_DIR.
DEFAULT_CACHE_DIR = pathlib.Path("/var/cache/tsdeploy")
#: Debian release -> (exact CPython version of its python3, glibc version). The full version matters:
#: markers such as redis' `python_full_version < "3.11.3"` (Debian 12 ships 3.11.2) pull extra wheels.
#: The glibc version bounds the manylinux tags the host can load.
TARGET_PYTHONS: dict[str, tuple[str, str]] = {
    "bookworm": ("3.11.2", "2.36"),
    "trixie": ("3.13.5", "2.41"),
}
#: Set by `tsdeploy deploy` for its pyinfra run: the release id it built before pyinfra started.
RELEASE_ENV = "TSDEPLOY_RELEASE_ID"
#: Files and folders of app/ that make up a release; tests, caches and build output do not.
_RELEASE_INPUTS = ("pyproject.toml", "requirements.txt", "requirements.lock", "setup.cfg", "MANIFEST.in", "src")
#: The app's dependency tree pinned with hashes (`make lock`), resolved for every target Python at once.
LOCK_FILE = "requirements.lock"
_IGNORED_PARTS = {"__pycache__", "build", "dist"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
#: Wheels carry file timestamps; a fixed epoch (1980-01-01, the zip minimum) makes rebuilt wheels identical.
_SOURCE_DATE_EPOCH = "315532800"


class ArtifactError(RuntimeError):
    """Building the release artifact failed; the message says which step and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One release artifact for one target Python.

    + release_id: content hash of the app source and pins (12 hex digits)
    + python_version: the target's exact CPython version, e.g. "3.11.2"
    + tarball: path of the wheelhouse tarball on the control node
    + wheel_name: file name of the app's own wheel inside the tarball
    """

    release_id: str
    python_version: str
    tarball: pathlib.Path
    wheel_name: str


def _release_files(app_dir: pathlib.Path) -> list[pathlib.Path]:
    """Every file of app_dir that belongs to a release, sorted so that the hash is stable."""
    files: list[pathlib.Path] = []
    for name in _RELEASE_INPUTS:
        entry = app_dir / name
        candidates = [entry] if entry.is_file() else sorted(entry.rglob("*")) if entry.is_dir() else []
        for path in candidates:
            relative = path.relative_to(app_dir)
            if not path.is_file() or _IGNORED_PARTS.intersection(relative.parts):
                continue
            if any(part.endswith(_IGNORED_SUFFIXES) for part in relative.parts):
                continue
            files.append(path)
    return sorted(files)


def release_id(app_dir: pathlib.Path | None = None) -> str:
    """Content hash (12 hex digits) of the app's source files and pins: same inputs, same release id."""
    app_dir = app_dir or app_source_dir()
    files = _release_files(app_dir)
    if not (app_dir / "pyproject.toml").is_file() or not (app_dir / "requirements.txt").is_file():
        raise ArtifactError(f"{app_dir} is not the app: it needs pyproject.toml and requirements.txt")
    if not (app_dir / LOCK_FILE).is_file():
        raise ArtifactError(f"{app_dir} has no {LOCK_FILE} (its dependencies pinned with hashes): run `make lock` "
                            "in the repository and commit the file")
    digest = hashlib.sha256()
    for path in files:
        # Length-prefixed name and content, so that moving bytes between files changes the hash.
        name = path.relative_to(app_dir).as_posix().encode()
        content = path.read_bytes()
        digest.update(f"{len(name)}:{len(content)}:".encode() + name + content)
    return digest.hexdigest()[:12]


def target_python(debian_release: str) -> tuple[str, str]:
    """(full CPython version, glibc version) of a Debian release's python3."""
    try:
        return TARGET_PYTHONS[debian_release]
    except KeyError:
        known = ", ".join(sorted(TARGET_PYTHONS))
        raise ArtifactError(
            f"debian_release={debian_release!r} has no known Python; set debian_release to one of: {known}"
        ) from None


def cache_dir() -> pathlib.Path:
    """The control node's artifact cache (TSDEPLOY_CACHE_DIR or /var/cache/tsdeploy)."""
    return pathlib.Path(os.environ.get("TSDEPLOY_CACHE_DIR", DEFAULT_CACHE_DIR)) / "artifacts"


def _pip(args: list[str], step: str) -> None:
    """Run pip of the control Python; on failure raise with pip's own output and the step that failed."""
    env = dict(os.environ, SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ArtifactError(f"{step} failed (pip exit {result.returncode}):\n{result.stdout}{result.stderr}")


def _platform_args(glibc: str) -> list[str]:
    """pip --platform options for every manylinux tag a host with this glibc loads.

    pip matches --platform literally (it does not widen manylinux_2_36 to manylinux_2_17), so list them all:
    manylinux2014 (= 2.17) up to the host's glibc.
    """
    newest = int(glibc.split(".")[1])
    tags = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, newest + 1))]
    return [option for tag in tags for option in ("--platform", tag)]


def _target_environment(full_version: str) -> dict[str, str]:
    """PEP 508 marker values of the target host's python3 (Debian, CPython, Linux, x86_64)."""
    return {
        "python_version": ".".join(full_version.split(".")[:2]), "python_full_version": full_version,
        "implementation_name": "cpython", "implementation_version": full_version,
        "platform_python_implementation": "CPython", "platform_system": "Linux", "platform_machine": "x86_64",
        "sys_platform": "linux", "os_name": "posix",
    }


def target_requirements(lock: str, full_version: str) -> str:
    r"""The lock's entries the target CPython's markers select: a requirements file with hashes, no markers.

    The lock is universal (one file for every Python), and pip evaluates markers against the Python it runs
    on, the control node's, not the host's: so the selection happens here. Raises ArtifactError naming an
    entry that is not an exact pin with at least one hash (hash-checking mode needs both).

    >>> lock = "a==1.0 \\\n    --hash=sha256:aa\n    # via x\nb==2.0 ; python_full_version < '3.11.3' \\\n    --hash=sha256:bb\n"
    >>> print(target_requirements(lock, "3.11.2"), end="")
    a==1.0 --hash=sha256:aa
    b==2.0 --hash=sha256:bb
    >>> print(target_requirements(lock, "3.13.5"), end="")
    a==1.0 --hash=sha256:aa
    """
    environment = _target_environment(full_version) | {"extra": ""}
    logical, pending = [], ""
    for raw in lock.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        if pending + line:
            logical.append(pending + line)
        pending = ""
    selected: list[str] = []
    for entry in logical:
        requirement_text, _, hashes = entry.partition(" --hash=")
        hashes = ("--hash=" + hashes).split() if hashes else []
        try:
            requirement = Requirement(requirement_text.strip())
        except InvalidRequirement:
            requirement = None
        pins = [spec for spec in requirement.specifier if spec.operator == "=="] if requirement else []
        if requirement is None or len(pins) != 1 or not hashes:
            raise ArtifactError(f"{LOCK_FILE}: {entry.split(' --hash=')[0]!r} is not an exact pin with a hash; "
                                "run `make lock` to regenerate it")
        if requirement.marker is None or requirement.marker.evaluate(environment):
            selected.append(f"{requirement.name}=={pins[0].version} {' '.join(hashes)}\n")
    return "".join(selected)


def _missing_requirements(wheelhouse: pathlib.Path, full_version: str) -> list[str]:
    """Requirements of the wheels that the target's markers select but no wheel in the house satisfies."""
    environment = _target_environment(full_version)
    wheels = {parse_wheel_filename(path.name)[0] for path in wheelhouse.glob("*.whl")}
    missing: list[str] = []
    for path in sorted(wheelhouse.glob("*.whl")):
        with zipfile.ZipFile(path) as wheel:
            metadata = next(name for name in wheel.namelist() if name.endswith(".dist-info/METADATA"))
            lines = wheel.read(metadata).decode().splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
            needed = requirement.marker is None or requirement.marker.evaluate(environment | {"extra": ""})
            if needed and canonicalize_name(requirement.name) not in wheels:
                requirement.marker = None
                missing.append(str(requirement))
    return sorted(set(missing))


def _build_wheelhouse(app_dir: pathlib.Path, full_version: str, glibc: str, out: pathlib.Path) -> str:
    """Fill `out` with the app wheel and its locked dependencies' wheels; return the app wheel's name."""
    # The control venv's pinned setuptools builds it: no build tool is fetched unpinned for a release.
    _pip(["wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(app_dir)],
         "building the app wheel")
    app_wheels = [path.name for path in out.glob("*.whl")]
    if len(app_wheels) != 1:
        raise ArtifactError(f"pip wheel {app_dir} produced {app_wheels}, expected exactly one wheel")
    pinned = out / "requirements.txt"
    pinned.write_text(target_requirements((app_dir / LOCK_FILE).read_text(), full_version))
    abi = "cp" + "".join(full_version.split(".")[:2])
    _pip(["download", "--quiet", "--only-binary=:all:", "--no-deps", "--require-hashes", "--dest", str(out),
          "--python-version", full_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
          "--abi", "none", *_platform_args(glibc), "-r", str(pinned)],
         f"downloading the locked wheels for CPython {full_version} (each must be a manylinux x86_64 or "
         f"pure-Python wheel whose sha256 is in app/{LOCK_FILE}; after changing a pin run `make lock`)")
    # Every requirement of every wheel (the app's included) must be in the house, or the host's install fails.
    if missing := _missing_requirements(out, full_version):
        raise ArtifactError(f"app/{LOCK_FILE} does not cover what CPython {full_version} needs: "
                            f"{', '.join(missing)}; add the pins to app/requirements.txt and run `make lock`")
    return app_wheels[0]


def _write_tarball(source: pathlib.Path, tarball: pathlib.Path) -> None:
    """Write source's files into an uncompressed, byte-reproducible tarball (sorted, fixed owners/times)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(source.iterdir()):
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, int(_SOURCE_DATE_EPOCH)
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    tarball.write_bytes(buffer.getvalue())


def app_source_dir() -> pathlib.Path:
    """The app tree a deploy ships: TSDEPLOY_APP_DIR if set, else the repository's app/."""
    return pathlib.Path(os.environ.get("TSDEPLOY_APP_DIR", APP_DIR))


def snapshot(app_dir: pathlib.Path, into: pathlib.Path) -> pathlib.Path:
    """Copy app_dir's release files into `into`/app and return it: hash and wheel then see the same bytes."""
    frozen = into / "app"
    for path in _release_files(app_dir):
        target = frozen / path.relative_to(app_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return frozen


def _cached(rid: str, python_version: str) -> Artifact | None:
    """The artifact of release `rid` for a CPython version if the cache holds it."""
    release_dir = cache_dir() / rid
    tarball = release_dir / f"wheelhouse-py{python_version}.tar"
    name_file = release_dir / f"wheelhouse-py{python_version}.wheel"
    if tarball.is_file() and name_file.is_file():
        return Artifact(rid, python_version, tarball, name_file.read_text().strip())
    return None


def _build_frozen(frozen: pathlib.Path, rid: str, debian_release: str) -> Artifact:
    """The artifact of a snapshot whose release id is `rid`, built only if the cache does not hold it."""
    python_version, glibc = target_python(debian_release)
    if (cached := _cached(rid, python_version)) is not None:
        return cached
    release_dir = cache_dir() / rid
    tarball = release_dir / f"wheelhouse-py{python_version}.tar"
    name_file = release_dir / f"wheelhouse-py{python_version}.wheel"
    release_dir.mkdir(parents=True, exist_ok=True)
    print(f">> building release {rid} wheelhouse for CPython {python_version}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=release_dir) as scratch:
        wheelhouse = pathlib.Path(scratch) / "wheelhouse"
        wheelhouse.mkdir()
        wheel_name = _build_wheelhouse(frozen, python_version, glibc, wheelhouse)
        partial = pathlib.Path(scratch) / tarball.name
        _write_tarball(wheelhouse, partial)
        (pathlib.Path(scratch) / name_file.name).write_text(f"{wheel_name}\n")
        os.replace(pathlib.Path(scratch) / name_file.name, name_file)
        os.replace(partial, tarball)
    return Artifact(rid, python_version, tarball, wheel_name)


def build_all(debian_releases: set[str], app_dir: pathlib.Path | None = None) -> dict[str, Artifact]:
    """One release (one snapshot of the app tree, one id) built for each Debian release's Python.

    Updates: nothing for a release/Python pair already in `<cache>/artifacts/<release id>/`; otherwise
    builds in a temporary folder and moves the tarball into place atomically (concurrent builds cannot
    half-write it).

    Example: `build_all({"bookworm"})["bookworm"].tarball`
             -> /var/cache/tsdeploy/artifacts/1a2b3c4d5e6f/wheelhouse-py3.11.2.tar
    """
    app_dir = app_dir or app_source_dir()
    for debian_release in debian_releases:
        target_python(debian_release)  # refuse an unknown release before copying anything
    release_id(app_dir)  # refuses a tree that is not the app, naming it (the snapshot's name would not help)
    with tempfile.TemporaryDirectory(prefix="tsdeploy-app-") as scratch:
        frozen = snapshot(app_dir, pathlib.Path(scratch))
        rid = release_id(frozen)
        return {debian_release: _build_frozen(frozen, rid, debian_release) for debian_release in debian_releases}


def requirements_digest(artifact: Artifact) -> str:
    """sha256 of the pinned requirements.txt inside the artifact's wheelhouse (installed with the release)."""
    with tarfile.open(artifact.tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.rsplit("/", 1)[-1] == "requirements.txt")
        extracted = tar.extractfile(member)
        assert extracted is not None
        return hashlib.sha256(extracted.read()).hexdigest()


def build(debian_release: str, app_dir: pathlib.Path | None = None) -> Artifact:
    """The release artifact of the app tree as it is now, for one Debian release's Python (see build_all)."""
    return build_all({debian_release}, app_dir)[debian_release]


def for_deploy(debian_release: str) -> Artifact:
    """The artifact this pyinfra run ships: the release `tsdeploy deploy` pinned, else the app tree as it is now.

    Raises ArtifactError when the pinned release is not in the cache (it is built before pyinfra starts).
    """
    pinned = os.environ.get(RELEASE_ENV)
    if not pinned:
        return build(debian_release)
    python_version, _ = target_python(debian_release)
    cached = _cached(pinned, python_version)
    if cached is None:
        raise ArtifactError(f"{RELEASE_ENV}={pinned}: {cache_dir() / pinned} holds no wheelhouse for CPython "
                            f"{python_version}; run `tsdeploy deploy` (it builds before pyinfra) or unset it")
    return cached


def releases_to_prune(installed: dict[str, int], keep: int, protected: set[str],
                      went_live: set[str] | None = None) -> list[str]:
    """Releases beyond the newest `keep` (by install time); protected ones (current, new) always stay.

    With `went_live`, releases that never served (left by failed deploys) are pruned before any that did,
    so they cannot push the rollback target out.

    >>> releases_to_prune({"a": 1, "b": 2, "c": 3, "d": 4}, keep=2, protected={"a"})
    ['b', 'c']
    >>> releases_to_prune({"a": 1, "b": 2, "c": 3, "d": 4}, keep=3, protected={"d"}, went_live={"a", "d"})
    ['b']
    """
    served = set(installed) if went_live is None else went_live | protected
    newest_first = sorted(installed, key=lambda rid: (rid in served, installed[rid], rid), reverse=True)
    kept = set(protected)
    for rid in newest_first:
        if len(kept) >= max(keep, len(protected)):
            break
        kept.add(rid)
    return sorted(rid for rid in installed if rid not in kept)


class RollbackRefused(ValueError):
    """No release to roll back to, or the app hosts do not agree on one; the message says what to do."""


def _live(state: dict) -> str | None:
    return state["current"].rstrip("/").rsplit("/", 1)[-1] if state.get("current") else None


def _previous(state: dict) -> str | None:
    """The installed release that went live most recently before the live one (never-live ones are skipped)."""
    live = _live(state)
    went_live = {rid: mtime for rid, mtime in state.get("went_live", {}).items()
                 if rid in state["releases"] and rid != live}
    return max(went_live, key=lambda rid: (went_live[rid], rid), default=None)


def rollback_target(hosts: dict[str, dict], to: str | None = None) -> str:
    """The release every app host switches back to: `to`, else the one that was live before the live one.

    `hosts` maps each app host to its AppReleases fact: {"releases": {release id: install time},
    "went_live": {release id: last time it went live}, "current": path of the live release or None}.
    Raises RollbackRefused, naming the hosts and releases, when a release is not installed everywhere,
    hosts run different releases, or no other installed release has been live.

    >>> rollback_target({"app1": {"releases": {"a": 1, "b": 2}, "went_live": {"a": 1, "b": 2}, "current": "/r/b"}})
    'a'
    """
    if not hosts:
        raise RollbackRefused("the inventory has no app hosts: there is nothing to roll back")
    if to is not None:
        missing = {name: sorted(state["releases"]) for name, state in hosts.items() if to not in state["releases"]}
        if missing:
            where = "; ".join(f"{name} has {', '.join(rids) or 'none'}" for name, rids in sorted(missing.items()))
            raise RollbackRefused(f"release {to} is not installed on every app host ({where}); pick one that "
                                  "all of them have, or deploy it with `tsdeploy deploy`")
        return to
    lives = {name: _live(state) for name, state in hosts.items()}
    if len(set(lives.values())) > 1:
        running = ", ".join(f"{name}: {rid}" for name, rid in sorted(lives.items()))
        raise RollbackRefused(f"the app hosts run different releases ({running}); name the release to "
                              "switch to with --to RELEASE")
    previous = {name: _previous(state) for name, state in hosts.items()}
    if None in previous.values():
        name = next(name for name, rid in sorted(previous.items()) if rid is None)
        raise RollbackRefused(f"there is no previous release on {name}: no installed release other than the "
                              f"live one ({lives[name] or 'none'}) has served there (installed: "
                              f"{', '.join(sorted(hosts[name]['releases'])) or 'none'}); nothing to roll back "
                              "to (name an installed one with --to RELEASE)")
    if len(set(previous.values())) > 1:
        found = ", ".join(f"{name}: {rid}" for name, rid in sorted(previous.items()))
        raise RollbackRefused(f"the app hosts have different previous releases ({found}); name the release "
                              "to switch to with --to RELEASE")
    return next(iter(previous.values()))
