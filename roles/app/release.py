"""Release directories on an app host: facts and fact-comparing operations.

Layout (root-owned; the app user only reads it):

    /opt/talentsphere/artifacts/<release id>-py<X.Y>.tar   wheelhouse uploaded from the control node
    /opt/talentsphere/releases/<release id>/               a venv with the app installed offline
    /opt/talentsphere/releases/<release id>/.tsdeploy-complete   written last: the release is usable
    /opt/talentsphere/releases/<release id>/.tsdeploy-live       touched each time it goes live (rollback order)
    /opt/talentsphere/current -> releases/<release id>     switched atomically (ln -sfn + mv -T)
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation

from tsdeploy.artifacts import releases_to_prune

#: Written as the last step of an install: a release directory without it is unfinished and rebuilt.
COMPLETE_MARKER = ".tsdeploy-complete"
#: Touched whenever `current` is switched to the release: the newest one other than the live release is
#: the release that served before it (a release that was installed but never went live has none).
LIVE_MARKER = ".tsdeploy-live"


class AppReleases(FactBase):
    """The complete releases (id -> install time), when each last went live, and where `current` points.

    .. code:: python

        {"releases": {"1a2b3c4d5e6f": 1764336000}, "went_live": {"1a2b3c4d5e6f": 1764336100},
         "current": "/opt/talentsphere/releases/1a2b3c4d5e6f"}
    """

    default = dict

    def command(self, releases_dir: str, current: str) -> str:
        quoted_dir, quoted_current = shlex.quote(releases_dir), shlex.quote(current)
        return (
            f"for marker in {quoted_dir}/*/{COMPLETE_MARKER}; do [ -f \"$marker\" ] && "
            f"echo \"release $(stat -c %Y \"$marker\") $(basename \"$(dirname \"$marker\")\")\"; done; "
            f"for marker in {quoted_dir}/*/{LIVE_MARKER}; do [ -f \"$marker\" ] && "
            f"echo \"live $(stat -c %Y \"$marker\") $(basename \"$(dirname \"$marker\")\")\"; done; "
            f"echo \"current $(readlink {quoted_current} || true)\""
        )

    def process(self, output: list[str]) -> dict:
        times: dict[str, dict[str, int]] = {"release": {}, "live": {}}
        current = None
        for line in output:
            kind, _, rest = line.partition(" ")
            if kind in times:
                mtime, _, release_id = rest.partition(" ")
                times[kind][release_id] = int(mtime)
            elif kind == "current":
                current = rest.strip() or None
        went_live = {rid: mtime for rid, mtime in times["live"].items() if rid in times["release"]}
        return {"releases": times["release"], "went_live": went_live, "current": current}


def release_dir(releases_dir: str, release_id: str) -> str:
    return f"{releases_dir}/{release_id}"


@operation()
def install_release(releases_dir: str, current: str, release_id: str, tarball: str, wheel_name: str):
    """Create a release's venv and install the app into it offline from the uploaded wheelhouse.

    + releases_dir: folder holding one directory per release
    + current: the `current` link (read with the same fact the switch uses)
    + release_id: the release to install (content hash of the app and its pins)
    + tarball: the wheelhouse tarball already on the host
    + wheel_name: the app's own wheel inside the tarball

    Updates: nothing when the release directory carries its completion marker; otherwise an unfinished
    directory is removed and the release is rebuilt from scratch, the marker written last.

    Example: install_release("/opt/talentsphere/releases", "/opt/talentsphere/current", "1a2b3c4d5e6f",
                             "/opt/talentsphere/artifacts/1a2b3c4d5e6f-py3.11.tar", "talentsphere-0.1.0-py3-none-any.whl")
    """
    releases = host.get_fact(AppReleases, releases_dir=releases_dir, current=current)
    if release_id in releases["releases"]:
        host.noop(f"release {release_id} is already installed")
        return
    target = shlex.quote(release_dir(releases_dir, release_id))
    wheelhouse = shlex.quote(f"{releases_dir}/.wheelhouse-{release_id}")
    # The venv is built at its final path (venv scripts embed it); the marker makes a half-built one visible.
    yield " && ".join([
        f"rm -rf {target} {wheelhouse}",
        f"mkdir -p {wheelhouse}",
        f"tar -xf {shlex.quote(tarball)} -C {wheelhouse}",
        f"python3 -m venv {target}",
        # Dependencies in hash-checking mode (each wheel's sha256 must be the lock's), then the app's own wheel,
        # built with the release, without dependencies; pip check proves the two agree.
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {target}/bin/pip install --quiet --no-index --find-links {wheelhouse} "
        f"--require-hashes -r {wheelhouse}/requirements.txt",
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {target}/bin/pip install --quiet --no-index --no-deps "
        f"{wheelhouse}/{shlex.quote(wheel_name)}",
        f"PIP_DISABLE_PIP_VERSION_CHECK=1 {target}/bin/pip check",
        # The app reports RELEASE in /health/ready; requirements.txt tells the next deploy whether a HUP can
        # load the next release (same dependencies) or Gunicorn's master must restart.
        f"cp {wheelhouse}/requirements.txt {target}/requirements.txt",
        f"echo {shlex.quote(release_id)} > {target}/RELEASE",
        f"rm -rf {wheelhouse}",
        f"touch {target}/{COMPLETE_MARKER}",
    ])


@operation()
def switch_current(current: str, target: str):
    """Point the `current` link at a release atomically (a new link renamed over the old one).

    + current: path of the link
    + target: release directory it must point at

    Updates: nothing when the link already points there; a plain `ln -sfn` would briefly leave no link.
    Touches the release's live marker after the switch (rollback picks the release that served before).

    Example: switch_current("/opt/talentsphere/current", "/opt/talentsphere/releases/1a2b3c4d5e6f")
    """
    releases_dir = target.rsplit("/", 1)[0]
    state = host.get_fact(AppReleases, releases_dir=releases_dir, current=current)
    if state["current"] == target:
        host.noop(f"{current} already points at {target}")
        return
    temporary = shlex.quote(f"{current}.tsdeploy-new")
    yield (f"ln -sfn {shlex.quote(target)} {temporary} && mv -T {temporary} {shlex.quote(current)} && "
           f"touch {shlex.quote(f'{target}/{LIVE_MARKER}')}")


@operation()
def prune_releases(releases_dir: str, artifacts_dir: str, current: str, keep: int, new_release: str):
    """Remove old releases and their wheelhouse tarballs, keeping the newest `keep` and always the live one.

    + releases_dir / artifacts_dir: where releases and tarballs live
    + current: the `current` link (its target is never removed, so a rollback target stays usable)
    + keep: how many releases to keep in total (app_releases_keep)
    + new_release: the release this deploy installs (kept even though it is not complete yet)

    Updates: nothing when at most `keep` releases are installed. Releases that never went live (failed
    deploys) go first, so they cannot push out the release a rollback would switch to.
    """
    state = host.get_fact(AppReleases, releases_dir=releases_dir, current=current)
    installed = dict(state["releases"])
    installed.setdefault(new_release, max(installed.values(), default=0) + 1)
    protected = {new_release}
    if state["current"]:
        protected.add(state["current"].rsplit("/", 1)[-1])
    stale = releases_to_prune(installed, keep, protected, went_live=set(state["went_live"]))
    if not stale:
        host.noop(f"{len(installed)} releases installed, keeping up to {keep}")
        return
    for rid in stale:
        yield f"rm -rf {shlex.quote(release_dir(releases_dir, rid))} {shlex.quote(artifacts_dir)}/{rid}-py*.tar"
